"""The language-model lab: a small causal transformer trained from scratch inside the lab.

tokenizer.py (characters, shipped), corpus.py (deterministic generated text: reviews with
controllable sentiment, "a+b=" arithmetic), oracle.py (the scripted preference oracle), model.py
(the transformer with a KV cache, the value/reward heads). Only model.py imports torch.
"""
