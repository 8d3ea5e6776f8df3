"""`make chaos` (issue #16): the whole platform under a load of applicants and a schedule of
faults at once, from one printed seed, then invariants checked against every source of truth
(the API's database, the PermitRequests, the portal's submissions, S3, Stripe's records, the
admin's listings, the API's answers, a real Prometheus's alerts) and a table of the figures.

`run.chaos_run` is the run; `load` the applicants; `faults` the fault schedule; `evidence` what
is gathered afterwards; `checks` the invariants; `alerts` Prometheus; `report` the table.
"""
