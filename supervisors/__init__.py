"""One module per process: what it runs, what its actors share, how they restart."""
