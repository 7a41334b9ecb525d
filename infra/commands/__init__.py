"""One module per `rexbert` subcommand group; each stays thin and calls one job function."""
