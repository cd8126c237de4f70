/*  casecheck.h: recomputes every case's state from the `event` table by replaying each case's
    events in (occurred_at, event_id) order, and compares it with the broker's `case_state`.
    The broker merges commutatively, batch by batch, in arrival order; this is the plain
    sequential definition, written independently, so agreement means order did not matter.  */
#ifndef ASY_CASECHECK_H_INCLUDED
#define ASY_CASECHECK_H_INCLUDED

#include <libpq-fe.h>

/* Returns the number of cases compared; fails the test (cr_assert) on the first difference. */
long asy_test_check_case_state(PGconn *pg);

/* Fails the test unless every (agent_id, epoch) stream holds seq 1..N exactly once, counting
   committed events and quarantined ones. Returns the number of rows. */
long asy_test_check_streams(PGconn *pg);

#endif
