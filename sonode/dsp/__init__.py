"""Signal processing on numpy signals: resampling, linear prediction (Burg), AR gap filling,
spectra, band edges and harmonics, quality metrics. No model, no files."""
