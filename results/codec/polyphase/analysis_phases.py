"""Tried, not kept (sarcodec 0.8.3): the analysis on phases (SpaceToDepth(4) of the input, the first strided
convolution as four 2 x 2 convolutions into the phases of its output, GDN per phase, the second as four phase
convolutions summed). The same values within float rounding, not faster: `python results/codec/polyphase/analysis_phases.py`."""
import itertools, time, numpy as np, onnxruntime
from safetensors.numpy import load_file
import sarcodec.codec.lite as lite
from sarcodec.codec.lite import _node, _initializer, _model_bytes, _float_input, _gdn_nodes, _layer_nodes, _span

def graph(state):
    nodes, inits = [], []
    w0, b0 = state["analysis.0.weight"], state["analysis.0.bias"]   # (64, 1, 5, 5)
    w2, b2 = state["analysis.2.weight"], state["analysis.2.bias"]   # (64, 64, 5, 5)
    k = w0.shape[-1]; P = k // 2; c0 = w0.shape[0]
    nodes.append(_node("SpaceToDepth", ["x"], ["s2d"], blocksize=4))
    inits.append(_initializer(b0, "b0"))
    # layer 0: output phase a at 2R: x[4(m+j)+r] with 2a + t - P = 4j + r
    maps = {}
    for a, b in itertools.product((0, 1), (0, 1)):
        rows = {}  # (j, r) -> t
        for t in range(k):
            j, r = divmod(2 * a + t - P, 4); rows[(j, r)] = t
        cols = {}
        for t in range(k):
            j, r = divmod(2 * b + t - P, 4); cols[(j, r)] = t
        jr, jc = _span([j for j, _ in rows]), _span([j for j, _ in cols])
        kern = np.zeros((c0, 16 * w0.shape[1], len(jr), len(jc)), np.float32)
        for (j1, r1), t1 in rows.items():
            for (j2, r2), t2 in cols.items():
                kern[:, (r1 * 4 + r2), j1 - jr[0], j2 - jc[0]] = w0[:, 0, t1, t2]
        nm = f"a0.{a}{b}"
        inits.append(_initializer(kern, nm + ".w"))
        nodes.append(_node("Conv", ["s2d", nm + ".w", "b0"], [nm], kernel_shape=[len(jr), len(jc)],
                           pads=[-jr[0], -jc[0], jr[-1], jc[-1]]))
        n, i = _gdn_nodes(state, "analysis.1", "gdn", nm, nm + ".g", shared=(a, b) != (0, 0)); nodes += n; inits += i
        maps[(a, b)] = nm + ".g"
    # layer 2: out[v] = sum_t h[2v + t - P] w[t]; h[2(v+j)+a] = H_a[v+j] with t - P = 2j + a
    terms = []
    for (a, b), src in maps.items():
        rows = {(t - P - a) // 2: t for t in range(k) if (t - P - a) % 2 == 0}
        cols = {(t - P - b) // 2: t for t in range(k) if (t - P - b) % 2 == 0}
        kern = w2[:, :, list(rows.values())][:, :, :, list(cols.values())]
        nm = f"a2.{a}{b}"
        inits.append(_initializer(np.ascontiguousarray(kern), nm + ".w"))
        ins = [src, nm + ".w"] + (["b2"] if not terms else [])
        nodes.append(_node("Conv", ins, [nm], kernel_shape=[len(rows), len(cols)], pads=[-min(rows), -min(cols), max(rows), max(cols)]))
        terms.append(nm)
    inits.append(_initializer(b2, "b2"))
    nodes += [_node("Add", terms[:2], ["t0"]), _node("Add", terms[2:], ["t1"]), _node("Add", ["t0", "t1"], ["h2"])]
    cur = "h2"
    for i, (layer, kind) in enumerate(lite._ANALYSIS[3:], start=3):
        n, ii = _layer_nodes(state, layer, kind, cur, f"h{i}"); nodes += n; inits += ii; cur = f"h{i}"
    nodes.append(_node("Identity", [cur], ["y"]))
    return _model_bytes(nodes, inits, "analysis", [_float_input("x", ["n", 1, "h", "w"])], _float_input("y", ["n", "c", "H", "W"]))

def sess(g):
    o = onnxruntime.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(g, o, providers=["CPUExecutionProvider"])
state = {k: v.astype(np.float32) for k, v in load_file("sarcodec/weights/hyperprior.safetensors").items() if v.dtype.kind == "f"}
old = sess(lite._transform_graph(state, lite._ANALYSIS, "analysis")); new = sess(graph(state))
for shape in [(1, 1, 280, 1088), (1, 1, 8, 12)]:
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    a = old.run(["y"], {"x": x})[0]; b = new.run(["y"], {"x": x})[0]
    print(shape, a.shape, b.shape, "maxdiff %.1e" % float(np.abs(a - b).max()), float(np.abs(a).max()))
x = np.random.default_rng(0).random((1, 1, 280, 1088)).astype(np.float32)
for s, nm in ((old, "old"), (new, "new")) * 2:
    ts = []
    for _ in range(6):
        t = time.perf_counter(); s.run(["y"], {"x": x}); ts.append(time.perf_counter() - t)
    print(nm, "min %.4f" % min(ts))
