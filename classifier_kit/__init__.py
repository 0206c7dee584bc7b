"""What DataClassifier.py does beyond the Windows ML tutorial, one module per thing it owns."""
