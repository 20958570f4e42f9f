from mmdeb.cli import main

raise SystemExit(main())
