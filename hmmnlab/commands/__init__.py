"""The command-line adapters: one module per ``hmmnlab`` command, each with ``run(args)``, which
turns the parsed options (an argparse Namespace built by :mod:`hmmnlab.commands.cli`) into calls of
the library and prints what was written.

The library modules below take plain arguments and know nothing of argparse;
:mod:`hmmnlab.commands.cli` imports a command's module only when that command runs, so building the
parsers imports no torch.
"""
