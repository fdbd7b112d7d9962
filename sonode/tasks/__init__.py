"""What a fitted model is used for: render, continue (extrapolate), upsample, fill gaps, detect defects."""
