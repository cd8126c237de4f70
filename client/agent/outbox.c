/*  outbox.c: the agent's durable store of events (see outbox.h).

    One SQLite file in WAL mode, synchronous=FULL:
      meta(key, value)   agent_id, site_id, epoch, next_seq, acked_seq, last_contact_ms,
                         last_ack_ms, format; after a re-issue (PROTOCOL.md 5.5) also
                         reissue_of_epoch, reissue_from_seq, reissue_last_seq, and
                         welcomed_epoch once the centre has WELCOMEd that epoch
      outbox(seq, event_id, payload, submitted_ms)   events not yet acknowledged
      seen(event_id, seq, digest)                    every event_id ever stored, with a
                                                     digest of the event as submitted
    Acknowledged payload rows are deleted; their event_id stays in `seen` (about 50 bytes per
    event) so a resubmission is recognised as a duplicate even after the centre has it, and
    an event that reuses an event_id for other content (a correction made by editing the line)
    is refused rather than dropped as a duplicate. Format 1 files (no digest) are upgraded on
    open; their old ids have no digest and still count as plain duplicates.
    Every write transaction starts with BEGIN IMMEDIATE: `run` and `submit` may work on the
    same file at once, and a deferred transaction that upgrades from read to write can fail
    with SQLITE_BUSY without ever waiting.
    Opening, creating, claiming and upgrading the file are in outbox_open.c.  */
#include "outbox_private.h"

#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_DIGEST_BYTES ASY_EVENT_DIGEST_BYTES
#define S_CONTACT_EVERY_MS 1000 /* note_contact writes at most this often */

int64_t asy_outbox_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

void asy_outbox_fail(asy_outbox_t *self, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

void asy_outbox_fail(asy_outbox_t *self, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(self->errmsg, sizeof self->errmsg, format, args);
    va_end(args);
}

/* Records SQLite's error for what we were doing; returns ASY_EDB. */
int asy_outbox_db_fail(asy_outbox_t *self, const char *doing)
{
    asy_outbox_fail(self, "%s: %s", doing, sqlite3_errmsg(self->db));
    return ASY_EDB;
}

/* Runs a prepared statement that returns no rows. */
static int s_run(asy_outbox_t *self, asy_outbox_statement_t which, const char *doing)
{
    sqlite3_stmt *statement = self->statement[which];
    int rc = sqlite3_step(statement);
    self->last_step = rc;
    sqlite3_reset(statement);
    sqlite3_clear_bindings(statement);
    return rc == SQLITE_DONE ? 0 : asy_outbox_db_fail(self, doing);
}

/* Reads meta[key] as an integer into *value (0 if the key is absent). A value that is not a
   whole number >= 0 (the file was edited by hand or damaged) is an error, not a 0: a seq
   counter read as 0 would hand out seqs the centre already holds. */
static int s_meta_read(asy_outbox_t *self, const char *key, int64_t *value, bool required)
{
    sqlite3_stmt *statement = self->statement[ASY_OUTBOX_META_GET];
    sqlite3_bind_text(statement, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(statement);
    /* an integer, or text of digits alone (what a hand edit with quotes stores); the type
       first: reading the text converts the value */
    int type = rc == SQLITE_ROW ? sqlite3_column_type(statement, 0) : SQLITE_NULL;
    int64_t number = rc == SQLITE_ROW ? sqlite3_column_int64(statement, 0) : 0;
    const unsigned char *digits = rc == SQLITE_ROW ? sqlite3_column_text(statement, 0) : NULL;
    bool whole = (rc != SQLITE_ROW && !required) || (type == SQLITE_INTEGER && number >= 0) ||
                 (type == SQLITE_TEXT && digits && *digits &&
                  strspn((const char *)digits, "0123456789") == strlen((const char *)digits) &&
                  strlen((const char *)digits) <= 18);
    char shown[48] = "";
    if (!whole)
        snprintf(shown, sizeof shown, "%.40s",
                 rc != SQLITE_ROW ? "(no row)"
                 : digits         ? (const char *)digits
                                  : "NULL");
    *value = rc == SQLITE_ROW && whole ? number : 0;
    sqlite3_reset(statement);
    sqlite3_clear_bindings(statement);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return asy_outbox_db_fail(self, "reading meta");
    if (!whole) {
        asy_outbox_fail(self, "the outbox is damaged: meta %s holds \"%s\", not a whole number",
                        key, shown);
        return ASY_EDB;
    }
    return 0;
}

static int s_meta_get(asy_outbox_t *self, const char *key, int64_t *value)
{
    return s_meta_read(self, key, value, false);
}

/* next_seq, acked_seq, epoch: every outbox has them; a missing one is damage, not a 0 */
static int s_meta_need(asy_outbox_t *self, const char *key, int64_t *value)
{
    return s_meta_read(self, key, value, true);
}

static int s_meta_set(asy_outbox_t *self, const char *key, int64_t value)
{
    sqlite3_stmt *statement = self->statement[ASY_OUTBOX_META_SET];
    sqlite3_bind_text(statement, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(statement, 2, value);
    return s_run(self, ASY_OUTBOX_META_SET, "writing meta");
}

const char *asy_outbox_errmsg(const asy_outbox_t *self)
{
    return self->errmsg;
}

uint64_t asy_outbox_epoch(const asy_outbox_t *self)
{
    return self->epoch;
}

/* Rolls back after a failure, keeping the failure's message rather than the rollback's. */
static void s_rollback_keeping_error(asy_outbox_t *self)
{
    char saved[sizeof self->errmsg];
    memcpy(saved, self->errmsg, sizeof saved);
    asy_outbox_rollback(self);
    memcpy(self->errmsg, saved, sizeof saved);
}

int asy_outbox_begin(asy_outbox_t *self)
{
    if (self->in_transaction) {
        asy_outbox_fail(self, "a transaction is already open");
        return ASY_EINVAL;
    }
    if (s_run(self, ASY_OUTBOX_BEGIN, "beginning a transaction") != 0)
        return ASY_EDB;
    int64_t next_seq, acked_seq, epoch;
    if (s_meta_need(self, "next_seq", &next_seq) != 0 ||
        s_meta_need(self, "acked_seq", &acked_seq) != 0 ||
        s_meta_need(self, "epoch", &epoch) != 0) {
        s_run(self, ASY_OUTBOX_ROLLBACK, "rolling back");
        return ASY_EDB;
    }
    if ((uint64_t)epoch != self->epoch) {
        /* re-issued by another process since this one opened it: its seqs are not ours */
        s_run(self, ASY_OUTBOX_ROLLBACK, "rolling back");
        asy_outbox_fail(self,
                        "the outbox was re-issued as epoch %lld after this program opened it as "
                        "epoch %llu; start the program again",
                        (long long)epoch, (unsigned long long)self->epoch);
        return ASY_EINVAL;
    }
    self->next_seq = (uint64_t)next_seq;
    self->acked_seq = (uint64_t)acked_seq;
    self->in_transaction = true;
    self->dirty = false;
    return 0;
}

int asy_outbox_commit(asy_outbox_t *self)
{
    if (!self->in_transaction) {
        asy_outbox_fail(self, "no transaction is open");
        return ASY_EINVAL;
    }
    if (self->dirty && s_meta_set(self, "next_seq", (int64_t)self->next_seq) != 0) {
        asy_outbox_rollback(self);
        return ASY_EDB;
    }
    if (s_run(self, ASY_OUTBOX_COMMIT, "committing") != 0) {
        s_rollback_keeping_error(self);
        return ASY_EDB;
    }
    self->in_transaction = false;
    return 0;
}

int asy_outbox_rollback(asy_outbox_t *self)
{
    if (!self->in_transaction)
        return 0;
    self->in_transaction = false;
    /* a failed COMMIT may already have ended the transaction */
    if (sqlite3_get_autocommit(self->db))
        return 0;
    return s_run(self, ASY_OUTBOX_ROLLBACK, "rolling back");
}

/* Looks event_id up in `seen`: 0, *seq and *same (false if the digest stored differs from
   digest; true if equal or none is stored) if found, ASY_ENOTFOUND if not. */
static int s_seen_find(asy_outbox_t *self, const char *event_id, const uint8_t *digest,
                       uint64_t *seq, bool *same)
{
    sqlite3_stmt *statement = self->statement[ASY_OUTBOX_SEEN_FIND];
    sqlite3_bind_text(statement, 1, event_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(statement);
    if (rc == SQLITE_ROW) {
        *seq = (uint64_t)sqlite3_column_int64(statement, 0);
        const void *stored = sqlite3_column_blob(statement, 1);
        *same = !stored || (sqlite3_column_bytes(statement, 1) == S_DIGEST_BYTES &&
                            memcmp(stored, digest, S_DIGEST_BYTES) == 0);
    }
    sqlite3_reset(statement);
    sqlite3_clear_bindings(statement);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? ASY_ENOTFOUND : asy_outbox_db_fail(self, "looking up an event id");
}

/* Refuses an event_id stored before: ASY_EINVAL if with other content (digest), else
   ASY_EEXIST and *seq_out (its seq, 0 if acknowledged). Returns 0 for a new one, or ASY_EDB. */
static int s_check_new(asy_outbox_t *self, const char *event_id, const uint8_t *digest,
                       uint64_t *seq_out)
{
    uint64_t existing = 0;
    bool same = true;
    int rc = s_seen_find(self, event_id, digest, &existing, &same);
    if (rc == 0 && !same) {
        asy_outbox_fail(
            self,
            "event_id %s: stored before with other content; a correction needs an event "
            "of its own (a new eventId)",
            event_id);
        return ASY_EINVAL;
    }
    if (rc == 0) {
        *seq_out = existing > self->acked_seq ? existing : 0;
        if (existing == 0) /* acknowledged in an epoch before a re-issue */
            asy_outbox_fail(self, "event_id %s: already stored and acknowledged", event_id);
        else
            asy_outbox_fail(self, "event_id %s: already stored as seq %llu", event_id,
                            (unsigned long long)existing);
        return ASY_EEXIST;
    }
    return rc == ASY_ENOTFOUND ? 0 : rc;
}

/* Stores the encoded event as seq, and its id with its digest in `seen`. Returns 0 or
   ASY_EDB. */
static int s_store(asy_outbox_t *self, const char *event_id, uint64_t seq, const uint8_t *digest,
                   const uint8_t *data, size_t size)
{
    sqlite3_stmt *seen = self->statement[ASY_OUTBOX_SEEN_INSERT];
    sqlite3_bind_text(seen, 1, event_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(seen, 2, (int64_t)seq);
    sqlite3_bind_blob(seen, 3, digest, S_DIGEST_BYTES, SQLITE_STATIC);
    int rc = s_run(self, ASY_OUTBOX_SEEN_INSERT, "storing the event id");
    if (rc == 0) {
        sqlite3_stmt *row = self->statement[ASY_OUTBOX_ROW_INSERT];
        sqlite3_bind_int64(row, 1, (int64_t)seq);
        sqlite3_bind_text(row, 2, event_id, -1, SQLITE_STATIC);
        sqlite3_bind_blob(row, 3, data, (int)size, SQLITE_STATIC);
        sqlite3_bind_int64(row, 4, asy_outbox_now_ms());
        rc = s_run(self, ASY_OUTBOX_ROW_INSERT, "storing the event");
    }
    return rc;
}

/* The body of asy_outbox_append, inside an open transaction. */
static int s_append(asy_outbox_t *self, asy_event_t *event, uint64_t *seq_out)
{
    uint64_t seq = self->next_seq;
    if (asy_event_stamp(event, self->site_id, self->agent_id, self->epoch, seq) != 0) {
        asy_outbox_fail(self, "out of memory");
        return ASY_ENOMEM;
    }
    const char *event_id = asy_event_id(event);
    if (!event_id) {
        asy_outbox_fail(self, "event has no event_id after stamping");
        return ASY_EINVAL;
    }
    /* the event as submitted, without what the stamp sets: the same line submitted again
       has the same digest */
    uint8_t digest[S_DIGEST_BYTES];
    if (asy_event_content_digest(event, digest) != 0) {
        asy_outbox_fail(self, "out of memory");
        return ASY_ENOMEM;
    }
    int rc = s_check_new(self, event_id, digest, seq_out);
    if (rc != 0)
        return rc;
    uint8_t *data = NULL;
    size_t size = 0;
    if (asy_event_encode(event, &data, &size) != 0) {
        asy_outbox_fail(self, "cannot encode the event");
        return ASY_ENOMEM;
    }
    if (size > ASY_MAX_EVENT_BYTES) {
        asy_outbox_fail(self, "event: %zu bytes encoded, more than the limit of %u", size,
                        ASY_MAX_EVENT_BYTES);
        free(data);
        return ASY_EINVAL;
    }
    rc = s_store(self, event_id, seq, digest, data, size);
    free(data);
    if (rc != 0)
        return rc;
    self->next_seq = seq + 1;
    self->dirty = true;
    *seq_out = seq;
    return 0;
}

int asy_outbox_append(asy_outbox_t *self, asy_event_t *event, uint64_t *seq_out)
{
    uint64_t seq = 0;
    int rc;
    if (self->in_transaction)
        rc = s_append(self, event, &seq);
    else {
        /* a lone append is its own transaction */
        rc = asy_outbox_begin(self);
        if (rc == 0) {
            rc = s_append(self, event, &seq);
            if (rc == 0)
                rc = asy_outbox_commit(self);
            else
                asy_outbox_rollback(self);
        }
    }
    if (seq_out)
        *seq_out = seq;
    return rc;
}

int asy_outbox_read(asy_outbox_t *self, uint64_t from_seq, size_t max, asy_outbox_row_fn *fn,
                    void *arg, size_t *count)
{
    size_t visited = 0;
    sqlite3_stmt *statement = self->statement[ASY_OUTBOX_ROW_READ];
    sqlite3_bind_int64(statement, 1, (int64_t)from_seq);
    sqlite3_bind_int64(statement, 2, max > INT64_MAX ? INT64_MAX : (int64_t)max);
    int rc;
    while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(statement, 0);
        const uint8_t *data = sqlite3_column_blob(statement, 1);
        size_t size = (size_t)sqlite3_column_bytes(statement, 1);
        visited++;
        if (fn(seq, data, size, arg) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    int result = rc == SQLITE_DONE ? 0 : asy_outbox_db_fail(self, "reading the outbox");
    sqlite3_reset(statement);
    sqlite3_clear_bindings(statement);
    if (count)
        *count = visited;
    return result;
}

/* The body of asy_outbox_ack, inside an open transaction. */
static int s_ack(asy_outbox_t *self, uint64_t seq, int64_t now_ms)
{
    if (seq <= self->acked_seq)
        return 0;
    if (seq >= self->next_seq) {
        asy_outbox_fail(self, "acknowledgement of seq %llu, but the last seq stored is %llu",
                        (unsigned long long)seq, (unsigned long long)(self->next_seq - 1));
        return ASY_EINVAL;
    }
    sqlite3_bind_int64(self->statement[ASY_OUTBOX_ROW_DELETE], 1, (int64_t)seq);
    int rc = s_run(self, ASY_OUTBOX_ROW_DELETE, "pruning acknowledged events");
    if (rc == 0)
        rc = s_meta_set(self, "acked_seq", (int64_t)seq);
    if (rc == 0)
        rc = s_meta_set(self, "last_ack_ms", now_ms);
    if (rc == 0)
        rc = s_meta_set(self, "last_contact_ms", now_ms);
    if (rc == 0)
        self->acked_seq = seq;
    return rc;
}

int asy_outbox_ack(asy_outbox_t *self, uint64_t seq, int64_t now_ms)
{
    if (self->in_transaction)
        return s_ack(self, seq, now_ms);
    /* No fsync for an acknowledgement: if a power cut loses it, the rows come back with it
       and are resent, and the centre acknowledges them again as duplicates; the next fsynced
       commit (a submission) makes it durable anyway. This keeps the write lock short. */
    sqlite3_exec(self->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    int rc = asy_outbox_begin(self);
    if (rc == 0) {
        rc = s_ack(self, seq, now_ms);
        if (rc == 0)
            rc = asy_outbox_commit(self);
        else
            s_rollback_keeping_error(self);
    }
    sqlite3_exec(self->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    if (rc == 0)
        self->contact_written_ms = now_ms;
    return rc;
}

int asy_outbox_forget(asy_outbox_t *self, uint64_t seq)
{
    char *sql = sqlite3_mprintf("DELETE FROM seen WHERE event_id ="
                                " (SELECT event_id FROM outbox WHERE seq = %lld)",
                                (long long)seq);
    if (!sql)
        return ASY_ENOMEM;
    int rc = sqlite3_exec(self->db, sql, NULL, NULL, NULL);
    sqlite3_free(sql);
    return rc == SQLITE_OK ? 0 : asy_outbox_db_fail(self, "forgetting a quarantined event");
}

int asy_outbox_note_problem(asy_outbox_t *self, const char *text, int64_t now_ms)
{
    char *sql = text ? sqlite3_mprintf("INSERT OR REPLACE INTO meta VALUES ('problem', %Q),"
                                       " ('problem_ms', %lld)",
                                       text, (long long)now_ms)
                     : sqlite3_mprintf("DELETE FROM meta WHERE key IN ('problem', 'problem_ms')");
    if (!sql)
        return ASY_ENOMEM;
    int busy_ms = self->busy_timeout_ms;
    asy_outbox_set_busy_timeout(self, 1000);
    sqlite3_exec(self->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    int rc = sqlite3_exec(self->db, sql, NULL, NULL, NULL);
    sqlite3_exec(self->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    asy_outbox_set_busy_timeout(self, busy_ms);
    sqlite3_free(sql);
    return rc == SQLITE_OK ? 0 : asy_outbox_db_fail(self, "recording a problem");
}

int asy_outbox_note_welcome(asy_outbox_t *self)
{
    if (self->welcome_noted == self->epoch)
        return 0;
    /* synchronous=FULL (the connection's setting): durable before the first PUBLISH */
    int rc = s_meta_set(self, "welcomed_epoch", (int64_t)self->epoch);
    if (rc == 0)
        self->welcome_noted = self->epoch;
    return rc;
}

int asy_outbox_note_contact(asy_outbox_t *self, int64_t now_ms)
{
    if (now_ms - self->contact_written_ms < S_CONTACT_EVERY_MS &&
        now_ms >= self->contact_written_ms)
        return 0;
    if (self->in_transaction)
        return s_meta_set(self, "last_contact_ms", now_ms);
    /* informational: neither wait for a submitter's lock nor pay for an fsync */
    int busy_ms = self->busy_timeout_ms;
    asy_outbox_set_busy_timeout(self, 0);
    sqlite3_exec(self->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    int rc = s_meta_set(self, "last_contact_ms", now_ms);
    sqlite3_exec(self->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    asy_outbox_set_busy_timeout(self, busy_ms);
    if (rc == 0)
        self->contact_written_ms = now_ms;
    else if ((self->last_step & 0xff) == SQLITE_BUSY)
        rc = 0; /* someone else is writing; try again next time */
    return rc;
}

int asy_outbox_event_id(asy_outbox_t *self, uint64_t seq, char out[ASY_UUID_TEXT + 1])
{
    out[0] = '\0';
    sqlite3_stmt *statement = self->statement[ASY_OUTBOX_EVENT_ID];
    sqlite3_bind_int64(statement, 1, (int64_t)seq);
    int rc = sqlite3_step(statement);
    if (rc == SQLITE_ROW && sqlite3_column_text(statement, 0))
        snprintf(out, ASY_UUID_TEXT + 1, "%s", (const char *)sqlite3_column_text(statement, 0));
    sqlite3_reset(statement);
    sqlite3_clear_bindings(statement);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
                                                 : asy_outbox_db_fail(self, "reading an event id");
}

/* ----------------------------------------------------------------------------------------------
   Re-issue (PROTOCOL.md 5.5). */

/* Gives the event stored at old_seq the place (epoch, new_seq), row and `seen` entry. */
static int s_renumber(asy_outbox_t *self, sqlite3_stmt *select, sqlite3_stmt *update,
                      sqlite3_stmt *seen, uint64_t old_seq, uint64_t epoch, uint64_t new_seq)
{
    sqlite3_bind_int64(select, 1, (int64_t)old_seq);
    int rc = sqlite3_step(select);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(select);
        asy_outbox_fail(self, "seq %llu: %s", (unsigned long long)old_seq,
                        rc == SQLITE_DONE ? "missing" : sqlite3_errmsg(self->db));
        return ASY_EDB;
    }
    asy_event_t *event = NULL;
    rc = asy_event_decode(sqlite3_column_blob(select, 0), (size_t)sqlite3_column_bytes(select, 0),
                          &event);
    sqlite3_reset(select);
    if (rc != 0) {
        asy_outbox_fail(self, "seq %llu: the stored event cannot be decoded",
                        (unsigned long long)old_seq);
        return ASY_EPROTO;
    }
    asy_event_renumber(event, epoch, new_seq);
    uint8_t *data = NULL;
    size_t size = 0;
    rc = asy_event_encode(event, &data, &size);
    if (rc == 0) {
        sqlite3_bind_int64(update, 1, (int64_t)new_seq);
        sqlite3_bind_blob(update, 2, data, (int)size, SQLITE_STATIC);
        sqlite3_bind_int64(update, 3, (int64_t)old_seq);
        rc = sqlite3_step(update) == SQLITE_DONE ? 0
                                                 : asy_outbox_db_fail(self, "renumbering an event");
        sqlite3_reset(update);
    }
    if (rc == 0) {
        sqlite3_bind_int64(seen, 1, (int64_t)new_seq);
        sqlite3_bind_text(seen, 2, asy_event_id(event), -1, SQLITE_STATIC);
        rc = sqlite3_step(seen) == SQLITE_DONE
                 ? 0
                 : asy_outbox_db_fail(self, "renumbering an event id");
        sqlite3_reset(seen);
    }
    free(data);
    asy_event_destroy(&event);
    return rc;
}

/* The body of asy_outbox_reissue, inside an open transaction. Rows move to lower seqs in
   ascending order (new = old - acked), so none lands on a row not yet moved. */
static int s_reissue(asy_outbox_t *self, asy_outbox_reissue_t *out)
{
    /* An epoch that is itself a re-issue may be re-issued again (a backup of it restored):
       the centre follows the chain of origins (PROTOCOL.md 5.5). But it knows an epoch only
       once that epoch has said HELLO: a re-issue the centre never WELCOMEd (re-issued twice
       in a row) is a link it cannot follow, and it would store every event again. Such an
       epoch has published nothing, so the new one re-issues its origin instead, from the
       same seq: the events keep their seqs. (acked_seq > 0 also shows a WELCOME, for outboxes
       older than welcomed_epoch.) */
    int64_t origin = 0, origin_from = 0, welcomed = 0;
    if (s_meta_get(self, "reissue_of_epoch", &origin) ||
        s_meta_get(self, "reissue_from_seq", &origin_from) ||
        s_meta_get(self, "welcomed_epoch", &welcomed))
        return ASY_EDB;
    uint64_t acked = self->acked_seq, last = self->next_seq - 1;
    uint64_t epoch = (uint64_t)asy_outbox_now_ms();
    if (epoch <= self->epoch)
        epoch = self->epoch + 1; /* epochs only grow, whatever the clock says */
    *out = (asy_outbox_reissue_t){.old_epoch = self->epoch,
                                  .new_epoch = epoch,
                                  .from_seq = acked + 1,
                                  .to_seq = last,
                                  .count = last > acked ? last - acked : 0};
    if (origin > 0 && origin_from > 0 && acked == 0 && (uint64_t)welcomed != self->epoch) {
        out->skipped_epoch = self->epoch;
        out->old_epoch = (uint64_t)origin;
        out->from_seq = (uint64_t)origin_from;
        out->to_seq = out->from_seq + out->count - 1;
    }
    sqlite3_bind_int64(self->statement[ASY_OUTBOX_ROW_DELETE], 1, (int64_t)acked);
    if (s_run(self, ASY_OUTBOX_ROW_DELETE, "pruning acknowledged events") != 0)
        return ASY_EDB;
    /* ids of acknowledged events keep no seq: theirs belonged to the old epoch */
    char *reset = sqlite3_mprintf("UPDATE seen SET seq = 0 WHERE seq <= %lld", (long long)acked);
    int reset_rc = reset ? sqlite3_exec(self->db, reset, NULL, NULL, NULL) : SQLITE_NOMEM;
    sqlite3_free(reset);
    if (reset_rc != SQLITE_OK)
        return asy_outbox_db_fail(self, "forgetting the old seqs of acknowledged events");
    sqlite3_stmt *select = NULL, *update = NULL, *seen = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(self->db, "SELECT payload FROM outbox WHERE seq = ?1", -1, &select,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(self->db, "UPDATE outbox SET seq = ?1, payload = ?2 WHERE seq = ?3", -1,
                           &update, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(self->db, "UPDATE seen SET seq = ?1 WHERE event_id = ?2", -1, &seen,
                           NULL) != SQLITE_OK)
        rc = asy_outbox_db_fail(self, "preparing the re-issue");
    for (uint64_t seq = acked + 1; rc == 0 && seq <= last; seq++)
        rc = s_renumber(self, select, update, seen, seq, epoch, seq - acked);
    sqlite3_finalize(select);
    sqlite3_finalize(update);
    sqlite3_finalize(seen);
    if (rc == 0 && (s_meta_set(self, "epoch", (int64_t)epoch) || s_meta_set(self, "acked_seq", 0) ||
                    s_meta_set(self, "reissue_of_epoch", (int64_t)out->old_epoch) ||
                    s_meta_set(self, "reissue_from_seq", (int64_t)out->from_seq) ||
                    s_meta_set(self, "reissue_last_seq", (int64_t)out->count)))
        rc = ASY_EDB;
    /* the problem that asked for this re-issue is answered: `status` must not ask again */
    if (rc == 0 && sqlite3_exec(self->db, "DELETE FROM meta WHERE key IN ('problem', 'problem_ms')",
                                NULL, NULL, NULL) != SQLITE_OK)
        rc = asy_outbox_db_fail(self, "clearing the problem the re-issue answers");
    if (rc == 0) {
        self->next_seq = out->count + 1;
        self->acked_seq = 0;
        self->dirty = true;
    }
    return rc;
}

int asy_outbox_reissue(asy_outbox_t *self, asy_outbox_reissue_t *out)
{
    memset(out, 0, sizeof *out);
    if (self->claim_fd < 0) {
        asy_outbox_fail(self, "re-issuing needs the outbox opened claimed");
        return ASY_EINVAL;
    }
    int rc = asy_outbox_begin(self);
    if (rc != 0)
        return rc;
    uint64_t old_epoch = self->epoch;
    rc = s_reissue(self, out);
    if (rc == 0) {
        self->epoch = out->new_epoch;
        rc = asy_outbox_commit(self);
        if (rc != 0)
            self->epoch = old_epoch;
    } else {
        s_rollback_keeping_error(self);
    }
    return rc;
}

/* meta[key] as text into out[size] ("" if the key is absent), with the prepared statement
   s_meta_get uses: status is read on every refresh of run. */
static int s_meta_text(asy_outbox_t *self, const char *key, char *out, size_t size)
{
    sqlite3_stmt *statement = self->statement[ASY_OUTBOX_META_GET];
    sqlite3_bind_text(statement, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(statement);
    const unsigned char *text = rc == SQLITE_ROW ? sqlite3_column_text(statement, 0) : NULL;
    snprintf(out, size, "%s", text ? (const char *)text : "");
    sqlite3_reset(statement);
    sqlite3_clear_bindings(statement);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : asy_outbox_db_fail(self, "reading meta");
}

/* Reads the status inside a transaction (open or read-only). */
static int s_status(asy_outbox_t *self, asy_outbox_status_t *out)
{
    int64_t next_seq, acked_seq, contact, ack, reissue_of, reissue_from, reissue_last;
    if (s_meta_need(self, "next_seq", &next_seq) || s_meta_need(self, "acked_seq", &acked_seq) ||
        s_meta_get(self, "last_contact_ms", &contact) || s_meta_get(self, "last_ack_ms", &ack) ||
        s_meta_get(self, "reissue_of_epoch", &reissue_of) ||
        s_meta_get(self, "reissue_from_seq", &reissue_from) ||
        s_meta_get(self, "reissue_last_seq", &reissue_last))
        return ASY_EDB;
    sqlite3_stmt *statement = self->statement[ASY_OUTBOX_OLDEST];
    sqlite3_bind_int64(statement, 1, acked_seq);
    int rc = sqlite3_step(statement);
    out->oldest_pending_ms = rc == SQLITE_ROW ? sqlite3_column_int64(statement, 0) : 0;
    sqlite3_reset(statement);
    sqlite3_clear_bindings(statement);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) /* DONE: nothing pending */
        return asy_outbox_db_fail(self, "reading the outbox");
    if (self->in_transaction)
        next_seq = (int64_t)self->next_seq; /* meta is brought up to date at commit */
    snprintf(out->agent_id, sizeof out->agent_id, "%s", self->agent_id);
    snprintf(out->site_id, sizeof out->site_id, "%s", self->site_id);
    out->epoch = self->epoch;
    out->last_seq = next_seq > 0 ? (uint64_t)next_seq - 1 : 0;
    out->acked_seq = (uint64_t)acked_seq;
    out->backlog = out->last_seq > out->acked_seq ? out->last_seq - out->acked_seq : 0;
    out->last_contact_ms = contact;
    out->last_ack_ms = ack;
    out->reissue_of_epoch = (uint64_t)reissue_of;
    out->reissue_from_seq = (uint64_t)reissue_from;
    out->reissue_last_seq = (uint64_t)reissue_last;
    if (s_meta_text(self, "problem", out->problem, sizeof out->problem) != 0 ||
        s_meta_get(self, "problem_ms", &out->problem_ms) != 0)
        return ASY_EDB;
    return 0;
}

int asy_outbox_status(asy_outbox_t *self, asy_outbox_status_t *out)
{
    memset(out, 0, sizeof *out);
    if (self->in_transaction)
        return s_status(self, out);
    /* one read transaction, so the numbers agree with each other */
    if (sqlite3_exec(self->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return asy_outbox_db_fail(self, "beginning a read");
    int rc = s_status(self, out);
    sqlite3_exec(self->db, "COMMIT", NULL, NULL, NULL);
    return rc;
}
