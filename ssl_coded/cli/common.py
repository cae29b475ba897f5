"""What several subcommands' parsers share."""

DEVICE_HELP = "auto (a GPU where there is one), cpu, cuda or cuda:N"
