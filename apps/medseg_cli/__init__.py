"""The `medseg` command line: thin subcommands over the library."""
