"""``python -m hmmnlab`` (and ``torchrun -m hmmnlab train ...``): the command line."""

from hmmnlab.cli import main

raise SystemExit(main())
