"""cohortbot: the operator's assistant for 8-day WeChat course cohorts."""
