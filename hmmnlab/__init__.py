"""hmmnlab: learn, inspect and ablate HMMN video object segmentation."""
