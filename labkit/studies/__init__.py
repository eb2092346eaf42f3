"""Studies over many runs: the bench and its leaderboard, the paper check and tables, the few-label and
speed studies, and the command line."""
