"""facegen.trainer: datasets, transforms, models, training, evaluation and adaptation."""
