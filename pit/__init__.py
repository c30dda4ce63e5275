"""pit: lightweight data orchestration on trio."""
