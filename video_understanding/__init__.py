"""Video understanding: clip classification from frames and sound (VGG16 per
frame + Conv1D log-mel audio, fused), prepare, train, evaluate, export, predict."""
