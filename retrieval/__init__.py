"""Image-text retrieval: VGG16 regions + LSTM text, contrastive training,
Recall@K, re-ranking by an image-text matching head, SavedModel export and
search."""
