/*  pgproxy.h: a TCP proxy in front of the test PostgreSQL, for faults the server itself cannot
    be asked for: it can swallow the server's answer to a COMMIT and cut the connection, so
    that the client never learns that its transaction was committed.  */
#ifndef ASY_TEST_PGPROXY_H_INCLUDED
#define ASY_TEST_PGPROXY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef struct asy_test_pg_proxy asy_test_pg_proxy_t;

/* Starts a proxy on 127.0.0.1 (a free port) to the server of conninfo (a unix socket folder
   or a TCP host). Writes into proxy_conninfo conninfo with host and port replaced by the
   proxy's and sslmode/gssencmode disabled (the proxy reads the protocol in the clear). Fails
   the test if it cannot. */
asy_test_pg_proxy_t *asy_test_pg_proxy_start(const char *conninfo, char *proxy_conninfo,
                                             size_t size);

/* From now on, the first COMMIT answered on a connection that sent COPY data since its last
   COMMIT (a batch of advsyncd's store) is committed by the server, but its answer is dropped
   and the connection closed both ways. Once. */
void asy_test_pg_proxy_drop_next_batch_commit(asy_test_pg_proxy_t *self);

/* How many answers to COMMIT were dropped so far. */
int asy_test_pg_proxy_dropped(asy_test_pg_proxy_t *self);

void asy_test_pg_proxy_stop(asy_test_pg_proxy_t **self_p);

#endif
