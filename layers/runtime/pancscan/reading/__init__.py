"""Reading scans: files and archives to model inputs with their positions along the body."""
