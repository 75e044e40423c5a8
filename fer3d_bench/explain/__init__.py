"""Grad-CAM heatmaps of a trained fold (the paper's Fig. 13): `gradcam` computes them through
the pytorch-grad-cam package, `run` chooses the samples, reads the fold safely and draws."""
