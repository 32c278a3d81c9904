"""Text metrics: BLEU, chrF (sacrebleu) and ROUGE (rouge-score)."""
