"""Deployment: running the codec over archives. :mod:`sarcodec.deploy.batch` compresses or decompresses many scenes
on Dask distributed (``sarcodec batch``); other deployment modules will join it here."""
