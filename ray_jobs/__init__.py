"""Ray drivers: tokenize and pack (Ray Data), pretrain (Ray Train), evaluate (Ray Tune)."""
