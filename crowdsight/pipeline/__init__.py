"""Camera pipeline (one per camera), annotation, local and Ray runners."""
