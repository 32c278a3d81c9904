"""Image metrics: FID, KID, Inception Score (one shared Inception pass), SSIM, PSNR."""
