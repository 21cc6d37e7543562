"""Weights on disk: checkpoint read, strict load and atomic save (io), the run's checkpoint retention (manager),
MindCV's relaxed case (mindcv), published files fetched and cached (hub), reference layouts read (convert,
torch_io). Nothing here builds a model: models/_factory.py does, with these."""
