"""One module per `unfoldkit` command."""
