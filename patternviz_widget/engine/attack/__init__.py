"""Adversarial attacks (FGSM, PGD) and what they do to regional features (paper Sec. 4)."""
