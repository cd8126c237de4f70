/*  bench_monitor: what the live monitor (proto/PROTOCOL.md part II) costs and how fast it is.

    (1) Upkeep per event, in process, on asy_aggregate_t alone (the monitor's work per case row;
        no database, no sockets). Synthetic case views from a deterministic PRNG: 9-15 events a
        case (12 on average); each event is one asy_aggregate_put of the case's next version
        with one more field filled (received, profile, qualifying start, decision or decline,
        contact, meeting, version-only steps, qualifying end, closure); dates over the current
        and the previous financial year; 4 sites. New cases and updates interleave: an eighth
        of the cases are open at any time, and an update goes to a random open case. With N =
        10k, 100k and 1M events stored (N/12 cases), the next 100,000 events are timed in 20
        chunks of 5,000, the three levels taking turns chunk by chunk (so other processes on
        the 2 cores slow every level alike); ns/event is the median chunk; upkeep_ratio = ns
        at 1M / ns at 10k. Baseline: recomputing from the stored events would cost O(N) per
        event (ratio ~100). Target: upkeep_ratio <= 1.5. Then, at 1M, what publishing costs
        per topic: every topic rendered (exact and public) and encoded, fastest of 3 passes.
    (2) Event-committed -> update-received latency, through a real advsyncd (default coalescing
        100 ms) with 2,000 events/s of background load (three agents `simulate --rate 667`
        with `run` forwarding) and 100, then 1,000 subscribers (of two kinds: see below) on the
        RESTRICTED stream (exact counts; the public stream rounds to 5 and suppresses 1-7, and
        both go through the same publishing path) subscribed to "site/probe/M1/". A fourth
        agent of site "probe" submits one new referral every 250 ms; probe k makes the count
        of "site/probe/M1/<this month>" reach k. latency(k, subscriber) = the wall time the
        subscriber first holds a count >= k minus event.received_at of probe k (stamped by the
        broker just before the batch's transaction: an upper bound of committed -> received).
        p50 / p99 over all (probe, subscriber) pairs (an update still missing 1.5 s after the
        last probe counts as arriving then, and the p99 is printed as a lower bound ">=").
        Also: the first subscriber's latency per probe (the monitor pipeline without the
        fan-out), the median first -> last subscriber spread (the fan-out), and the CPU
        seconds of advsyncd and of this process (and of their libzmq I/O threads) while the
        probes ran. Target: p99 < 50 ms at 1,000 subscribers. Broker memory: VmHWM of advsyncd.
        Two loads, each with its own broker and database:
        (a) as the issue specifies: simulate's default history (from 120 days ago) paced in
            real time, so every referral arrives long after its deadlines; with the broker's
            --breach-grace-ms 1000 (the default 30 s would outlast the probes) the monitor
            announces (and INSERTs into monitor_breach) a breach notice per deadline missed,
            a second after the case arrived;
        (b) live-dated: simulate --start <2 days ago>, so no deadline has passed yet and no
            breach notice is due: the monitor's upkeep and publishing alone.
        The last line has (a) (broker_rss_mb: the larger peak of the two); (b) is printed above.
    The subscribers run in this process (one thread, epoll), on the same 2 cores as the broker,
    seven agents and PostgreSQL, in two kinds, each with 100 then 1,000: first minimal ZMTP 3.0
    subscribers (zmtp_sub.h: one TCP socket each, read by this thread, one recv per wake-up),
    then libzmq SUB sockets (epoll over their ZMQ_FDs). Real subscribers run on machines of
    their own; here their receiving shares the broker's cores, and at 1,000 libzmq SUBs (an I/O
    thread handing every message to this thread) it costs more CPU than the broker's sending
    (see the CPU lines). The ZMTP kind keeps that cost low, so its figures are the broker's: the
    last line and the (b) line have them; the libzmq figures are printed above them.

    Usage: bench_monitor [upkeep|latency]  (default both) with ASY_TEST_DATABASE set for
    latency (tests/bench/run monitor starts a private cluster and sets it).  */
#include "harness.h"

#include "aggregate.h"
#include "calendar.h"
#include "case_view.h"
#include "monitor_msg.h"
#include "zmtp_sub.h"

#include <czmq.h>
#include <dirent.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_MEASURED 100000
#define S_CHUNKS 20
#define S_SITES 4
#define S_PROBES 20
#define S_PROBE_MS 250
#define S_WARMUP_MS 5000
#define S_TAIL_MS 1500
#define S_AGENTS 3
#define S_BREACH_GRACE "1000" /* ms, load (a) */
#define S_SETTINGS 4 /* 100 and 1,000 subscribers, ZMTP then libzmq */

static void s_die(const char *what)
{
    fprintf(stderr, "bench_monitor: %s\n", what);
    exit(1);
}

static int64_t s_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t s_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* the broker stamps received_at with this clock */
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A "VmRSS:" style line of /proc/<pid>/status, in MB (-1 if absent). */
static double s_status_mb(const char *pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%s/status", pid);
    FILE *file = fopen(path, "r");
    double mb = -1;
    size_t length = strlen(field);
    while (file && fgets(line, sizeof line, file))
        if (strncmp(line, field, length) == 0 && line[length] == ':')
            mb = (double)atoll(line + length + 1) / 1024.0;
    if (file)
        fclose(file);
    return mb;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double s_percentile(double *values, size_t count, int percent)
{
    if (count == 0)
        return -1;
    qsort(values, count, sizeof *values, s_cmp_double);
    return values[(count * (size_t)percent) / 100 - (percent == 100 ? 1 : 0)];
}

/* ----------------------------------------------------------------------------------------------
   (1) Upkeep: a deterministic stream of case versions. */

static uint64_t s_mix(uint64_t x) /* splitmix64 */
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

typedef struct {
    uint8_t steps; /* events this case will have */
    uint8_t done;  /* events put so far */
} s_case_t;

typedef struct {
    s_case_t *cases;
    uint32_t count, capacity;
    uint32_t *open; /* cases with events still to come */
    uint32_t open_count, open_capacity;
    uint64_t random;
    asy_date_t today, first_day; /* received dates fall in [first_day, today] */
} s_stream_t;

static void s_stream_init(s_stream_t *stream, asy_date_t today)
{
    memset(stream, 0, sizeof *stream);
    stream->random = 42;
    stream->today = today;
    int year, month;
    asy_date_to_ymd(today, &year, &month, NULL);
    /* the previous financial year starts on 1 April one year before the current one's */
    stream->first_day = asy_date_from_civil(month >= 4 ? year - 1 : year - 2, 4, 1);
}

static void s_stream_free(s_stream_t *stream)
{
    free(stream->cases);
    free(stream->open);
}

static uint64_t s_next_random(s_stream_t *stream)
{
    return s_mix(stream->random++);
}

static asy_date_t s_date_or_none(asy_date_t date, asy_date_t today)
{
    return date <= today ? date : ASY_NO_DATE; /* not happened yet */
}

/* The view of case `index` after `step` (1..) of its events: a pure function. */
static void s_case_view(const s_stream_t *stream, uint32_t index, int step, int steps,
                        asy_case_view_t *view)
{
    uint64_t r[8];
    for (int i = 0; i < 8; i++)
        r[i] = s_mix((uint64_t)index * 8 + (uint64_t)i + 0x5eed);
    memset(view, 0, sizeof *view);
    snprintf(view->case_id, sizeof view->case_id, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64
             "%016" PRIx64, r[0], r[1], r[2], r[3]);
    static const char *const sites[S_SITES] = {"ward-a", "ward-b", "office-c", "community-d"};
    snprintf(view->site_id, sizeof view->site_id, "%s", sites[r[4] % S_SITES]);
    view->version = step;
    view->received = view->contacted = view->met = view->declined = view->closed =
        view->decided = view->q_start = view->q_end = ASY_NO_DATE;
    asy_date_t today = stream->today;
    asy_date_t received =
        stream->first_day + (asy_date_t)(r[5] % (uint64_t)(today - stream->first_day + 1));
    bool imha = r[5] >> 32 & 1;
    bool declined = (r[5] >> 33) % 10 == 0;
    uint64_t d = r[6]; /* day offsets, a few bits each */
    /* step 1: referral received */
    view->received = received;
    view->service = imha ? 1 : 2;
    view->source = 1 + (int)(r[7] % 18);
    if (step >= 2 && !((r[7] >> 8) % 20 == 0)) { /* profile (5% opted out: all 0) */
        uint64_t a = r[7] >> 16;
        view->attr[ASY_ATTR_ETHNICITY_ONS] = (int)(a % 20);
        view->attr[ASY_ATTR_NHS_ETHNIC] = (int)(a / 20 % 18);
        view->attr[ASY_ATTR_SEX] = 1 + (int)(a / 360 % 2);
        view->attr[ASY_ATTR_GENDER] = 1 + (int)(a / 720 % 4);
        view->attr[ASY_ATTR_AGE_BAND] = 1 + (int)(a / 2880 % 6);
        view->attr[ASY_ATTR_DISABILITY] = (int)(a / 17280 % 8);
        view->attr[ASY_ATTR_RELIGION] = (int)(a / 138240 % 10);
        view->attr[ASY_ATTR_SEXUAL_ORIENTATION] = (int)(a / 1382400 % 6);
    }
    if (step >= 3 && imha) /* qualifying episode began a few days before the referral */
        view->q_start = received - (asy_date_t)(d % 4);
    if (step >= 4) {
        asy_date_t when = s_date_or_none(received + (asy_date_t)(d >> 4 & 3), today);
        if (declined)
            view->declined = when;
        else
            view->decided = when;
    }
    if (step >= 5 && !declined)
        view->contacted = s_date_or_none(received + (asy_date_t)(d >> 8 & 7), today);
    if (step >= 6 && !declined)
        view->met = s_date_or_none(received + 1 + (asy_date_t)(d >> 12 & 15), today);
    /* steps 7 .. steps-2: plan, outcomes, issues: a new version, the same figures */
    if (step >= steps - 1 && view->q_start != ASY_NO_DATE)
        view->q_end = s_date_or_none(view->q_start + 5 + (asy_date_t)(d >> 16 & 63), today);
    if (step >= steps && !declined) {
        view->closed = s_date_or_none(received + 20 + (asy_date_t)(d >> 24 & 127), today);
        view->left_before_goals = (d >> 40) % 5 == 0;
    }
}

/* The next event: a new case while fewer than an eighth of the cases are open, else the next
   version of a random open case. */
static void s_stream_next(s_stream_t *stream, asy_case_view_t *view)
{
    if (stream->open_count < stream->count / 8 + 16) {
        if (stream->count == stream->capacity) {
            stream->capacity = stream->capacity ? stream->capacity * 2 : 1024;
            stream->cases = realloc(stream->cases, stream->capacity * sizeof *stream->cases);
        }
        if (stream->open_count == stream->open_capacity) {
            stream->open_capacity = stream->open_capacity ? stream->open_capacity * 2 : 1024;
            stream->open = realloc(stream->open, stream->open_capacity * sizeof *stream->open);
        }
        if (!stream->cases || !stream->open)
            s_die("out of memory");
        stream->cases[stream->count] = (s_case_t){(uint8_t)(9 + s_next_random(stream) % 7), 0};
        stream->open[stream->open_count++] = stream->count++;
    }
    uint32_t slot = (uint32_t)(s_next_random(stream) % stream->open_count);
    uint32_t index = stream->open[slot];
    s_case_t *c = &stream->cases[index];
    c->done++;
    s_case_view(stream, index, c->done, c->steps, view);
    if (c->done == c->steps)
        stream->open[slot] = stream->open[--stream->open_count];
}

/* A version-only step changes nothing counted: the aggregate keeps its version alone
   (changed is false), which is checked here without a look-up for every other step. */
static void s_put(asy_aggregate_t *aggregate, const asy_case_view_t *view)
{
    bool changed = false;
    if (asy_aggregate_put(aggregate, view, &changed) != 0 ||
        (!changed && asy_aggregate_case(aggregate, view->case_id)->version != view->version))
        s_die("asy_aggregate_put failed or ignored a newer version");
}

#define S_LEVELS 3

typedef struct {
    long stored;
    s_stream_t stream;
    asy_aggregate_t *aggregate;
    asy_case_view_t *next; /* the timed events, made before the clock starts */
    size_t cases_before;
    double rss_mb, rss_growth_mb, preload_s;
    double chunk_ns[S_CHUNKS];
} s_level_t;

static void s_level_build(s_level_t *level, const asy_calendar_t *calendar, asy_date_t today)
{
    double rss_before = s_status_mb("self", "VmRSS");
    int64_t start = s_mono_ns();
    s_stream_init(&level->stream, today);
    level->aggregate = asy_aggregate_new(calendar, 2, today);
    if (!level->aggregate)
        s_die("asy_aggregate_new");
    asy_case_view_t view;
    for (long i = 0; i < level->stored; i++) {
        s_stream_next(&level->stream, &view);
        s_put(level->aggregate, &view);
    }
    level->preload_s = (double)(s_mono_ns() - start) / 1e9;
    level->cases_before = asy_aggregate_case_count(level->aggregate);
    level->rss_mb = s_status_mb("self", "VmRSS");
    level->rss_growth_mb = level->rss_mb - rss_before;
    level->next = malloc(S_MEASURED * sizeof *level->next);
    if (!level->next)
        s_die("out of memory");
    for (long i = 0; i < S_MEASURED; i++)
        s_stream_next(&level->stream, &level->next[i]);
}

static void s_level_chunk(s_level_t *level, int chunk)
{
    long size = S_MEASURED / S_CHUNKS;
    int64_t start = s_mono_ns();
    for (long i = chunk * size; i < (chunk + 1) * size; i++)
        s_put(level->aggregate, &level->next[i]);
    level->chunk_ns[chunk] = (double)(s_mono_ns() - start) / (double)size;
}

/* What publishing costs per topic, on the largest level: every topic rendered (exact, then
   public with disclosure control) and encoded as the broker sends it; the fastest of 3 passes.
   Printed for comparison between builds; no target. */
static void s_render_cost(asy_aggregate_t *aggregate)
{
    if (asy_aggregate_rebuild(aggregate) != 0)
        s_die("asy_aggregate_rebuild");
    size_t count = 0, capacity = 1024, cursor = 0;
    asy_topic_ref_t *refs = malloc(capacity * sizeof *refs);
    while (refs && asy_aggregate_next_dirty(aggregate, &cursor, &refs[count])) {
        if (++count == capacity)
            refs = realloc(refs, (capacity *= 2) * sizeof *refs);
    }
    if (!refs)
        s_die("out of memory");
    asy_mmsg_t msg;
    asy_mmsg_init(&msg, ASY_MMSG_UPDATE);
    double best[2] = {0, 0};
    size_t cells[2] = {0, 0}, bytes[2] = {0, 0};
    for (int pass = 0; pass < 3; pass++)
        for (int s = 0; s < 2; s++) {
            cells[s] = bytes[s] = 0;
            int64_t start = s_mono_ns();
            for (size_t i = 0; i < count; i++) {
                uint8_t *data = NULL;
                size_t size = 0;
                if (asy_aggregate_render(aggregate, &refs[i], s == 0, 0, &msg.update) != 0 ||
                    asy_mmsg_encode(&msg, &data, &size) != 0)
                    s_die("render or encode failed");
                cells[s] += msg.update.cell_count;
                bytes[s] += size;
                free(data);
            }
            double us = (double)(s_mono_ns() - start) / 1e3 / (double)count;
            if (pass == 0 || us < best[s])
                best[s] = us;
        }
    printf("render: %zu topics at N=1000000, rendered and encoded: exact %.1f us/topic "
           "(%.0f cells, %.0f bytes on average), public %.1f us/topic (%.0f cells, %.0f bytes)\n",
           count, best[0], (double)cells[0] / (double)count, (double)bytes[0] / (double)count,
           best[1], (double)cells[1] / (double)count, (double)bytes[1] / (double)count);
    asy_mmsg_release(&msg);
    free(refs);
}

static double s_upkeep(void)
{
    asy_calendar_t *calendar = asy_calendar_new();
    if (!calendar)
        s_die("asy_calendar_new");
    asy_date_t today = asy_london_date(s_wall_us());
    s_level_t levels[S_LEVELS] = {{.stored = 10000}, {.stored = 100000}, {.stored = 1000000}};
    for (int l = 0; l < S_LEVELS; l++)
        s_level_build(&levels[l], calendar, today);
    /* round robin: whatever else runs on the machine slows every level alike */
    for (int chunk = 0; chunk < S_CHUNKS; chunk++)
        for (int l = 0; l < S_LEVELS; l++)
            s_level_chunk(&levels[l], chunk);
    printf("upkeep: asy_aggregate_put, the next %d events after N stored, timed in %d chunks "
           "(levels round robin); ns/event = median chunk\n", S_MEASURED, S_CHUNKS);
    double ns[S_LEVELS];
    for (int l = 0; l < S_LEVELS; l++) {
        s_level_t *level = &levels[l];
        double total = 0;
        for (int c = 0; c < S_CHUNKS; c++)
            total += level->chunk_ns[c];
        qsort(level->chunk_ns, S_CHUNKS, sizeof *level->chunk_ns, s_cmp_double);
        ns[l] = (level->chunk_ns[S_CHUNKS / 2 - 1] + level->chunk_ns[S_CHUNKS / 2]) / 2;
        printf("  N=%-8ld %6.0f ns/event (mean %.0f, chunks %.0f-%.0f); cases held %zu -> %zu; "
               "RSS %.1f MB after the preload (+%.1f MB for this level), preload %.1f s\n",
               level->stored, ns[l], total / S_CHUNKS, level->chunk_ns[0],
               level->chunk_ns[S_CHUNKS - 1], level->cases_before,
               asy_aggregate_case_count(level->aggregate), level->rss_mb, level->rss_growth_mb,
               level->preload_s);
        if (l == S_LEVELS - 1)
            s_render_cost(level->aggregate);
        free(level->next);
        asy_aggregate_destroy(&level->aggregate);
        s_stream_free(&level->stream);
    }
    fflush(stdout);
    asy_calendar_destroy(&calendar);
    return ns[S_LEVELS - 1] / ns[0];
}

/* ----------------------------------------------------------------------------------------------
   (2) Latency. */

typedef struct {
    bool libzmq;        /* libzmq SUB sockets, else zmtp_sub.h's subscribers */
    zsock_t **socks;
    void **handles;     /* the libzmq sockets */
    asy_zmtp_sub_t **zmtp;
    int epoll;          /* their ZMQ_FDs or TCP sockets: a wake-up costs O(ready) */
    int count;
    bool *heard;        /* a heartbeat came: the subscription is in place */
    int64_t *seen;      /* highest count held per subscriber */
    int64_t *arrival;   /* [subscriber * S_PROBES + (k - first_k)]: wall us, 0 = not yet */
    int64_t first_k;    /* the global number of this setting's first probe */
    char topic[ASY_TOPIC_MAX];
    uint8_t *last_body; /* the last body decoded, and its count: subscribers share messages */
    size_t last_size;
    int64_t last_count;
} s_subscribers_t;

static void s_subscribers_open(s_subscribers_t *subs, int count, const char *endpoint,
                               bool libzmq)
{
    memset(subs, 0, sizeof *subs);
    subs->libzmq = libzmq;
    subs->count = count;
    subs->socks = calloc((size_t)count, sizeof *subs->socks);
    subs->handles = calloc((size_t)count, sizeof *subs->handles);
    subs->zmtp = calloc((size_t)count, sizeof *subs->zmtp);
    subs->epoll = epoll_create1(0);
    subs->heard = calloc((size_t)count, sizeof *subs->heard);
    subs->seen = calloc((size_t)count, sizeof *subs->seen);
    subs->arrival = calloc((size_t)count * S_PROBES, sizeof *subs->arrival);
    if (subs->epoll < 0)
        s_die("epoll_create1");
    if (!subs->socks || !subs->handles || !subs->zmtp || !subs->heard || !subs->seen ||
        !subs->arrival)
        s_die("out of memory");
    static const char *const prefixes[] = {"site/probe/M1/", ASY_HEARTBEAT_TOPIC, NULL};
    for (int i = 0; i < count && !libzmq; i++) {
        subs->zmtp[i] = asy_zmtp_sub_new(endpoint, prefixes);
        if (!subs->zmtp[i])
            s_die("ZMTP subscriber: cannot connect (RLIMIT_NOFILE?)");
        struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(subs->epoll, EPOLL_CTL_ADD, asy_zmtp_sub_fd(subs->zmtp[i]), &event) != 0)
            s_die("epoll_ctl");
    }
    for (int i = 0; i < count && libzmq; i++) {
        zsock_t *sock = zsock_new(ZMQ_SUB);
        if (!sock)
            s_die("zsock_new(SUB): raise RLIMIT_NOFILE / max sockets");
        zsock_set_subscribe(sock, "site/probe/M1/");
        zsock_set_subscribe(sock, ASY_HEARTBEAT_TOPIC);
        zsock_set_linger(sock, 0);
        if (zsock_connect(sock, "%s", endpoint) != 0)
            s_die("SUB connect");
        subs->socks[i] = sock;
        subs->handles[i] = zsock_resolve(sock);
        /* ZMQ_FD is readable while the socket has unprocessed commands; reading the socket
           until EAGAIN processes them (level-triggered use is then safe) */
        struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(subs->epoll, EPOLL_CTL_ADD, zsock_fd(sock), &event) != 0)
            s_die("epoll_ctl");
    }
}

static void s_subscribers_close(s_subscribers_t *subs)
{
    for (int i = 0; i < subs->count; i++) {
        zsock_destroy(&subs->socks[i]);
        asy_zmtp_sub_destroy(&subs->zmtp[i]);
    }
    free(subs->socks);
    free(subs->zmtp);
    free(subs->handles);
    close(subs->epoll);
    free(subs->heard);
    free(subs->seen);
    free(subs->arrival);
    free(subs->last_body);
}

/* The total cell's count of an encoded update (shared messages are decoded once). */
static int64_t s_total_count(s_subscribers_t *subs, const void *data, size_t size)
{
    if (subs->last_body && subs->last_size == size && memcmp(subs->last_body, data, size) == 0)
        return subs->last_count;
    asy_mmsg_t msg;
    int64_t count = -1;
    if (asy_mmsg_decode(&msg, data, size) == 0 && msg.kind == ASY_MMSG_UPDATE) {
        for (size_t c = 0; c < msg.update.cell_count; c++)
            if (strcmp(msg.update.cells[c].breakdown, "total") == 0 &&
                strcmp(msg.update.cells[c].group, "ALL") == 0 && msg.update.cells[c].has_count)
                count = msg.update.cells[c].count;
        asy_mmsg_release(&msg);
    }
    free(subs->last_body);
    subs->last_body = malloc(size);
    if (!subs->last_body)
        s_die("out of memory");
    memcpy(subs->last_body, data, size);
    subs->last_size = size;
    subs->last_count = count;
    return count;
}

/* One message that subscriber i received at wall time now (us). */
static void s_on_message(s_subscribers_t *subs, int i, int64_t now, const void *topic,
                         size_t topic_size, const void *body, size_t body_size)
{
    if (topic_size == strlen(ASY_HEARTBEAT_TOPIC) &&
        memcmp(topic, ASY_HEARTBEAT_TOPIC, topic_size) == 0) {
        subs->heard[i] = true;
    } else if (topic_size == strlen(subs->topic) && memcmp(topic, subs->topic, topic_size) == 0) {
        int64_t count = s_total_count(subs, body, body_size);
        for (int64_t k = subs->seen[i] + 1; k <= count; k++)
            if (k >= subs->first_k && k < subs->first_k + S_PROBES &&
                !subs->arrival[(size_t)i * S_PROBES + (size_t)(k - subs->first_k)])
                subs->arrival[(size_t)i * S_PROBES + (size_t)(k - subs->first_k)] = now;
        if (count > subs->seen[i])
            subs->seen[i] = count;
    }
}

/* Reads what libzmq subscriber i has queued. */
static void s_drain_one(s_subscribers_t *subs, int i)
{
    void *sock = subs->handles[i];
    for (;;) {
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        if (zmq_msg_recv(&topic, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&topic);
            return;
        }
        int64_t now = s_wall_us();
        zmq_msg_init(&body);
        if (!zmq_msg_more(&topic) || zmq_msg_recv(&body, sock, 0) < 0)
            s_die("a stream message without two parts");
        while (zmq_msg_more(&body)) /* protocol says two parts: drop anything more */
            zmq_msg_recv(&body, sock, 0);
        s_on_message(subs, i, now, zmq_msg_data(&topic), zmq_msg_size(&topic),
                     zmq_msg_data(&body), zmq_msg_size(&body));
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
    }
}

typedef struct {
    s_subscribers_t *subs;
    int i;
    int64_t now; /* wall us of the read that brought the bytes */
} s_zmtp_reader_t;

static void s_on_zmtp_message(void *arg, const uint8_t *topic, size_t topic_size,
                              const uint8_t *body, size_t body_size)
{
    s_zmtp_reader_t *reader = arg;
    s_on_message(reader->subs, reader->i, reader->now, topic, topic_size, body, body_size);
}

static void s_poll(s_subscribers_t *subs, int timeout_ms)
{
    struct epoll_event events[256];
    int ready = epoll_wait(subs->epoll, events, 256, timeout_ms);
    for (int e = 0; e < ready; e++) {
        int i = (int)events[e].data.u32;
        if (subs->libzmq) {
            s_drain_one(subs, i);
            continue;
        }
        s_zmtp_reader_t reader = {subs, i, s_wall_us()};
        if (asy_zmtp_sub_read(subs->zmtp[i], s_on_zmtp_message, &reader) != 0)
            s_die("a ZMTP subscriber lost its connection or got a malformed frame");
    }
}

/* The month topic of the probes submitted now. */
static void s_month_topic(char out[ASY_TOPIC_MAX])
{
    int year, month;
    asy_date_to_ymd(asy_london_date(s_wall_us()), &year, &month, NULL);
    snprintf(out, ASY_TOPIC_MAX, "site/probe/M1/%04d-%02d", year, month);
}

typedef struct {
    const char *dir;
    char *probe_config;
    int64_t next_k; /* global number of the next probe */
    pid_t submitter;
    int failures;
} s_prober_t;

/* Starts `advsync-agent submit` with one new referral in the background. */
static void s_probe(s_prober_t *prober)
{
    char path[512], stamp[32], name[64];
    snprintf(path, sizeof path, "%s/probe-%" PRId64 ".jsonl", prober->dir, prober->next_k);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    FILE *file = fopen(path, "w");
    if (!file)
        s_die("cannot write a probe file");
    fprintf(file,
            "{\"caseRef\":\"PROBE-%" PRId64 "\",\"personRef\":\"probe-%" PRId64 "\","
            "\"occurredAt\":\"%s\",\"referralReceived\":{\"service\":\"SERVICE_IMHA\","
            "\"receivedAt\":\"%s\"}}\n",
            prober->next_k, prober->next_k, stamp, stamp);
    fclose(file);
    snprintf(name, sizeof name, "probe-submit-%" PRId64, prober->next_k);
    prober->submitter =
        asy_test_spawn_agent(prober->probe_config, prober->dir, name, "submit", path, NULL);
    prober->next_k++;
}

/* True once the last submitter has exited (counting failures). */
static bool s_submitter_done(s_prober_t *prober)
{
    int status;
    if (prober->submitter <= 0)
        return true;
    if (waitpid(prober->submitter, &status, WNOHANG) != prober->submitter)
        return false;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        prober->failures++;
    prober->submitter = 0;
    return true;
}

/* CPU seconds (user + system) of a process's threads: all of them, and those named
   "ZMQbg/IO/<n>" (libzmq's I/O threads: the TCP side of the fan-out). */
typedef struct {
    double total, io;
} s_cpu_t;

static s_cpu_t s_cpu(pid_t pid)
{
    s_cpu_t cpu = {0, 0};
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *tasks = opendir(path);
    for (struct dirent *task; tasks && (task = readdir(tasks));) {
        if (task->d_name[0] == '.')
            continue;
        char stat_path[320], name[64];
        snprintf(stat_path, sizeof stat_path, "%s/%s/stat", path, task->d_name);
        double seconds = asy_test_cpu_seconds(stat_path, name);
        if (seconds < 0)
            continue;
        cpu.total += seconds;
        if (strncmp(name, "ZMQbg/IO/", 9) == 0)
            cpu.io += seconds;
    }
    if (tasks)
        closedir(tasks);
    return cpu;
}

typedef struct {
    int subscribers;
    bool libzmq; /* libzmq SUBs, else zmtp_sub.h's */
    int64_t first_k;
    int64_t start_us, end_us; /* wall clock of the probes */
    int64_t *arrival;         /* [subscriber * S_PROBES + j], owned */
    double connect_s;
    s_cpu_t broker_cpu, bench_cpu; /* used while the probes ran */
} s_setting_t;

static void s_measure(s_setting_t *setting, s_prober_t *prober, const char *endpoint,
                      pid_t broker)
{
    s_subscribers_t subs;
    int64_t start = asy_test_now_ms();
    s_subscribers_open(&subs, setting->subscribers, endpoint, setting->libzmq);
    s_month_topic(subs.topic);
    subs.first_k = setting->first_k = prober->next_k;
    int heard = 0;
    while (heard < subs.count && asy_test_now_ms() - start < 30000) {
        s_poll(&subs, 50);
        heard = 0;
        for (int i = 0; i < subs.count; i++)
            heard += subs.heard[i];
    }
    if (heard < subs.count)
        s_die("subscribers not connected within 30 s (no heartbeat)");
    setting->connect_s = (double)(asy_test_now_ms() - start) / 1000.0;
    s_cpu_t broker_before = s_cpu(broker), bench_before = s_cpu(getpid());
    setting->start_us = s_wall_us();
    int64_t next_ms = asy_test_now_ms(), end_ms = 0;
    int sent = 0;
    while (sent < S_PROBES || asy_test_now_ms() < end_ms) {
        int64_t now_ms = asy_test_now_ms();
        if (sent < S_PROBES && now_ms >= next_ms && s_submitter_done(prober)) {
            s_probe(prober);
            sent++;
            next_ms += S_PROBE_MS;
            if (sent == S_PROBES)
                end_ms = now_ms + S_TAIL_MS;
        }
        int64_t wait = sent < S_PROBES ? next_ms - asy_test_now_ms() : 10;
        s_poll(&subs, wait < 1 ? 1 : wait > 10 ? 10 : (int)wait);
    }
    setting->end_us = s_wall_us();
    s_cpu_t broker_after = s_cpu(broker), bench_after = s_cpu(getpid());
    setting->broker_cpu = (s_cpu_t){broker_after.total - broker_before.total,
                                    broker_after.io - broker_before.io};
    setting->bench_cpu = (s_cpu_t){bench_after.total - bench_before.total,
                                   bench_after.io - bench_before.io};
    while (!s_submitter_done(prober))
        usleep(10000);
    setting->arrival = subs.arrival;
    subs.arrival = NULL;
    s_subscribers_close(&subs);
}

/* The monitor_restricted line of the broker's endpoint file. */
static void s_restricted_endpoint(const char *dir, char *out, size_t size)
{
    char path[512], line[512];
    snprintf(path, sizeof path, "%s/broker.endpoint", dir);
    FILE *file = fopen(path, "r");
    *out = 0;
    while (file && fgets(line, sizeof line, file)) {
        line[strcspn(line, "\r\n")] = 0;
        if (strncmp(line, "monitor_restricted ", 19) == 0)
            snprintf(out, size, "%s", line + 19);
    }
    if (file)
        fclose(file);
    if (!*out)
        s_die("no monitor_restricted endpoint in broker.endpoint");
}

/* received_at (wall us) of every probe, in submission order; returns how many. */
static int s_probe_times(PGconn *pg, int64_t *out, int capacity)
{
    PGresult *res = PQexec(pg, "SELECT (extract(epoch FROM received_at) * 1000000)::bigint"
                               " FROM event WHERE site_id = 'probe' ORDER BY seq");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        s_die(PQerrorMessage(pg));
    int rows = PQntuples(res) < capacity ? PQntuples(res) : capacity;
    for (int r = 0; r < rows; r++)
        out[r] = atoll(PQgetvalue(res, r, 0));
    PQclear(res);
    return rows;
}

typedef struct {
    double p50, p99, max;
    double first_p50, first_p99; /* the first subscriber to hold each probe: the pipeline */
    double spread_ms;            /* median over probes of last - first subscriber */
    size_t pairs, missing;
} s_latency_t;

/* Latencies of one setting. An update that never came counts as (end of observation -
   received_at): the percentiles are then lower bounds, and missing says so. */
static s_latency_t s_figures(const s_setting_t *setting, const int64_t *received, int probes)
{
    s_latency_t out = {0};
    size_t n = (size_t)setting->subscribers * S_PROBES;
    double *values = malloc(n * sizeof *values);
    double spreads[S_PROBES], firsts[S_PROBES];
    size_t measured = 0;
    if (!values)
        s_die("out of memory");
    for (int j = 0; j < S_PROBES; j++) {
        int64_t k = setting->first_k + j;
        if (k > probes)
            continue; /* never committed: s_latency warns */
        int64_t first = INT64_MAX, last = 0;
        for (int i = 0; i < setting->subscribers; i++) {
            int64_t at = setting->arrival[(size_t)i * S_PROBES + (size_t)j];
            if (!at) {
                out.missing++;
                at = setting->end_us;
            }
            values[out.pairs++] = (double)(at - received[k - 1]) / 1000.0;
            first = at < first ? at : first;
            last = at > last ? at : last;
        }
        firsts[measured] = (double)(first - received[k - 1]) / 1000.0;
        spreads[measured++] = (double)(last - first) / 1000.0;
    }
    out.p50 = s_percentile(values, out.pairs, 50);
    out.p99 = s_percentile(values, out.pairs, 99);
    out.max = s_percentile(values, out.pairs, 100);
    out.first_p50 = s_percentile(firsts, measured, 50);
    out.first_p99 = s_percentile(firsts, measured, 99);
    out.spread_ms = s_percentile(spreads, measured, 50);
    free(values);
    return out;
}

static void s_raise_file_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        limit.rlim_cur = limit.rlim_max == RLIM_INFINITY || limit.rlim_max > 65536
                             ? 65536
                             : limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
            perror("setrlimit");
    }
    zsys_set_max_sockets(4096);
}

static void s_drop_database(const char *conninfo)
{
    const char *name = strrchr(conninfo, '=');
    PGconn *pg = name ? PQconnectdb(asy_test_conninfo()) : NULL;
    char sql[160];
    if (pg && PQstatus(pg) == CONNECTION_OK) {
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", name + 1);
        PQclear(PQexec(pg, sql));
    }
    PQfinish(pg);
}

/* The background load: per site an agent `run` and a `simulate --rate 667` (start: its
   --start date, "" for the default). */
static void s_start_load(const char *dir, const char *endpoint, const char *start,
                         pid_t runner[S_AGENTS], pid_t simulator[S_AGENTS])
{
    static const char *const sites[S_AGENTS] = {"ward-a", "ward-b", "office-c"};
    for (int a = 0; a < S_AGENTS; a++) {
        char id[32], seed[8], name[32];
        snprintf(id, sizeof id, "load-%d", a);
        snprintf(seed, sizeof seed, "%d", a + 1);
        char *config = asy_test_agent_config(dir, id, sites[a], endpoint);
        snprintf(name, sizeof name, "%s-run", id);
        runner[a] = asy_test_spawn_agent(config, dir, name, "run", NULL);
        snprintf(name, sizeof name, "%s-simulate", id);
        simulator[a] = *start ? asy_test_spawn_agent(config, dir, name, "simulate", "--rate",
                                                     "667", "--events", "2000000", "--seed",
                                                     seed, "--start", start, NULL)
                              : asy_test_spawn_agent(config, dir, name, "simulate", "--rate",
                                                     "667", "--events", "2000000", "--seed",
                                                     seed, NULL);
        free(config);
    }
}

/* Prints the figures of one setting and returns them. */
static s_latency_t s_report(const s_setting_t *set, const int64_t *received, int probes)
{
    s_latency_t f = s_figures(set, received, probes);
    double seconds = (double)(set->end_us - set->start_us) / 1e6;
    printf("  %4d %s subscribers: received_at -> update p50 %.1f ms, p99 %s%.1f ms, max %.1f ms"
           " (%zu pairs); first subscriber p50 %.1f ms, p99 %.1f ms; first -> last %.1f ms"
           " (median)\n",
           set->subscribers, set->libzmq ? "libzmq SUB" : "ZMTP", f.p50, f.missing ? ">=" : "",
           f.p99, f.max, f.pairs, f.first_p50, f.first_p99, f.spread_ms);
    printf("        CPU while probing (%.1f s): advsyncd %.2f s (libzmq I/O thread %.2f s), "
           "the subscribers (this process) %.2f s (I/O thread %.2f s)\n",
           seconds, set->broker_cpu.total, set->broker_cpu.io, set->bench_cpu.total,
           set->bench_cpu.io);
    if (f.missing)
        printf("        WARNING: %zu of %zu updates had not arrived %.1f s after the last "
               "probe (counted as arriving then: lower bounds)\n",
               f.missing, f.pairs, S_TAIL_MS / 1000.0);
    return f;
}

typedef struct {
    double p99_100, p99_1000, broker_mb; /* ZMTP subscribers */
    double libzmq_p99_100, libzmq_p99_1000;
} s_latency_result_t;

/* One run: broker, background load, probes with 100 then 1,000 subscribers. start_days_ago
   0: simulate's default history (from 120 days ago); n: simulate --start n days ago. */
static s_latency_result_t s_latency(const char *title, int start_days_ago)
{
    char *db = asy_test_create_database();
    char *dir = asy_test_tmpdir();
    char endpoint[128], restricted[256], pid_text[16], start[16] = "";
    /* (a): breaches are due at once; a 1 s grace (default 30 s, longer than the probes run)
       makes the monitor announce them while it is measured */
    const char *const grace[] = {"--breach-grace-ms", S_BREACH_GRACE, NULL};
    pid_t broker = asy_test_start_broker_with(db, dir, asy_test_free_port(),
                                              start_days_ago ? NULL : grace, endpoint,
                                              sizeof endpoint);
    snprintf(pid_text, sizeof pid_text, "%d", (int)broker);
    s_restricted_endpoint(dir, restricted, sizeof restricted);
    if (start_days_ago > 0) {
        time_t then = time(NULL) - (time_t)start_days_ago * 86400;
        struct tm tm;
        gmtime_r(&then, &tm);
        strftime(start, sizeof start, "%Y-%m-%d", &tm);
    }
    printf("latency, %s: advsyncd (default coalescing, 100 ms), restricted stream; "
           "logs in %s (tests/bench/run removes them unless ASY_BENCH_KEEP=1)\n", title, dir);

    pid_t runner[S_AGENTS + 1], simulator[S_AGENTS];
    s_start_load(dir, endpoint, start, runner, simulator);
    s_prober_t prober = {.dir = dir, .next_k = 1,
                         .probe_config = asy_test_agent_config(dir, "probe", "probe", endpoint)};
    runner[S_AGENTS] = asy_test_spawn_agent(prober.probe_config, dir, "probe-run", "run", NULL);
    usleep(S_WARMUP_MS * 1000);

    s_setting_t settings[S_SETTINGS] = {{.subscribers = 100},
                                        {.subscribers = 1000},
                                        {.subscribers = 100, .libzmq = true},
                                        {.subscribers = 1000, .libzmq = true}};
    for (int s = 0; s < S_SETTINGS; s++)
        s_measure(&settings[s], &prober, restricted, broker);
    double broker_mb = s_status_mb(pid_text, "VmHWM");
    double broker_rss = s_status_mb(pid_text, "VmRSS");

    PGconn *pg = asy_test_pg_connect(db);
    int64_t received[S_SETTINGS * S_PROBES];
    int expected = S_SETTINGS * S_PROBES, probes = 0;
    for (int wait = 0;
         wait < 100 && (probes = s_probe_times(pg, received, expected)) < expected; wait++)
        usleep(100000);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM event WHERE site_id <> 'probe' AND received_at >= "
             "to_timestamp(%.6f) AND received_at < to_timestamp(%.6f)",
             (double)settings[0].start_us / 1e6,
             (double)settings[S_SETTINGS - 1].end_us / 1e6);
    long long background = asy_test_pg_int(pg, sql);
    double window_s = (double)(settings[S_SETTINGS - 1].end_us - settings[0].start_us) / 1e6;

    for (int a = 0; a < S_AGENTS; a++)
        asy_test_stop(simulator[a], SIGTERM, 10000);
    for (int a = 0; a <= S_AGENTS; a++)
        asy_test_stop(runner[a], SIGTERM, 10000);
    asy_test_stop(broker, SIGTERM, 20000);
    long long breaches = asy_test_pg_int(pg, "SELECT count(*) FROM monitor_breach");
    PQfinish(pg);

    printf("  background: %.0f events/s committed while the probes ran (%lld in %.1f s); "
           "%lld breach notices recorded by the monitor\n",
           (double)background / window_s, background, window_s, breaches);
    if (probes < expected || prober.failures)
        printf("  WARNING: %d of %d probes committed, %d submits failed\n", probes, expected,
               prober.failures);
    s_latency_result_t result = {.broker_mb = broker_mb};
    double *p99[S_SETTINGS] = {&result.p99_100, &result.p99_1000, &result.libzmq_p99_100,
                               &result.libzmq_p99_1000};
    for (int s = 0; s < S_SETTINGS; s++) {
        *p99[s] = s_report(&settings[s], received, probes).p99;
        free(settings[s].arrival);
    }
    printf("  advsyncd memory: peak (VmHWM) %.1f MB, at the end (VmRSS) %.1f MB\n", broker_mb,
           broker_rss);
    fflush(stdout);
    s_drop_database(db);
    free(prober.probe_config);
    free(dir);
    free(db);
    return result;
}

int main(int argc, char **argv)
{
    bool upkeep = argc < 2 || strcmp(argv[1], "upkeep") == 0;
    bool latency = argc < 2 || strcmp(argv[1], "latency") == 0;
    if (argc > 2 || (!upkeep && !latency)) {
        fprintf(stderr, "usage: bench_monitor [upkeep|latency]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    double ratio = -1;
    s_latency_result_t replay = {-1, -1, -1, -1, -1}, live = {-1, -1, -1, -1, -1};
    if (upkeep)
        ratio = s_upkeep();
    if (latency) {
        s_raise_file_limit(); /* before any broker starts: it inherits the limit */
        replay = s_latency("(a) load as specified: simulate's default history, replayed "
                           "(referrals arrive past their deadlines)", 0);
        live = s_latency("(b) live-dated load: simulate --start 2 days ago (no deadline has "
                         "passed: no breach notices)", 2);
        printf("(a) with libzmq SUB subscribers: p99_ms_100=%.1f p99_ms_1000=%.1f\n",
               replay.libzmq_p99_100, replay.libzmq_p99_1000);
        printf("(b) with libzmq SUB subscribers: p99_ms_100=%.1f p99_ms_1000=%.1f\n",
               live.libzmq_p99_100, live.libzmq_p99_1000);
        printf("(b) live-dated load: p99_ms_100=%.1f p99_ms_1000=%.1f broker_rss_mb=%.1f\n",
               live.p99_100, live.p99_1000, live.broker_mb);
    }
    printf("targets: upkeep_ratio <= 1.5 (flat cost per event), p99 < 50 ms at 1,000 "
           "subscribers; the last line has (a)\n");
    printf("monitor: upkeep_ratio=%.2f p99_ms_100=%.1f p99_ms_1000=%.1f broker_rss_mb=%.1f\n",
           ratio, replay.p99_100, replay.p99_1000,
           replay.broker_mb > live.broker_mb ? replay.broker_mb : live.broker_mb);
    return 0;
}
