"""Where fcgispec's files are (a checkout or an installed package), where a run writes, and the
Debian packages a feature installs on first use."""
