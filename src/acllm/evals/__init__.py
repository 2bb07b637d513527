"""Evaluations: metrics that match their reference implementations (more to come: datasets,
faithfulness, judge, runner, reports)."""
