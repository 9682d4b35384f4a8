from sarcodec.cli import main

raise SystemExit(main())
