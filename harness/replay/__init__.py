"""Replay of captured FastCGI traffic, and the regressions built on it.

plan (what to send, from a transcript), engine (one connection: send, receive, judge), concurrency
(every connection at once, one thread each), runner (replay(): a whole transcript), results (the
divergences and the report), comparison (two captures compared by meaning), cases (a replay inside a
case), regressions (transcripts that are regression cases), regression_skeleton (fcgispec
new-regression, scripted captures), cli (the capture and replay commands).
"""
