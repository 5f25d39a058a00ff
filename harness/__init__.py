"""fcgispec's harness: the Python FastCGI codec and client, targets, cases, verdicts and reports."""
