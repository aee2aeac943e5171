"""Analysis, decided: templates, queries prepared, measurements judged into a verdict."""
