"""Audio metrics: SNR, SI-SNR, PESQ, MCD, STOI (paired, one reference per sample)."""
