"""``python -m hmmnlab`` (and ``torchrun -m hmmnlab train ...``): the command line."""

from hmmnlab.commands.cli import main

raise SystemExit(main())
