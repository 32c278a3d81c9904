"""Heavy shared resources (language models, WordNet, Inception), each loaded once."""
