/* RTP load generator for benchmarks/bench_media_capacity.py (the C twin of its Python
 * run_loadgen, which it replaces by default so the generator is never the bottleneck).
 *
 *   rtp_loadgen FRAMES_FILE WARMUP_S MEASURE_S [SLOTS]  < one JSON line: the server's ports
 *
 * Loopback only (127.0.0.1).  One UDP socket per leg; every 20 ms tick (absolute deadlines
 * on CLOCK_MONOTONIC, a timerfd armed at each deadline) every leg sends one PCMU packet:
 * seq = k & 0xffff, timestamp = k * 160, ssrc = 0x1000 + leg, payload frame
 * (leg * 37 + k) % frames of FRAMES_FILE (160-byte frames, written by the Python side).
 * SLOTS (default 1: all legs in one burst at the tick, as the Python generator does) spreads
 * the legs over the tick: leg i sends at tick + (i % SLOTS) * 20 ms / SLOTS.
 * Between bursts it drains the sockets with recvmmsg and keeps, for every packet the server
 * sends back, its sequence number and kernel receive timestamp (SO_TIMESTAMPNS).
 *
 * stdout: "mark" when the measured window starts (before tick WARMUP_S / 20 ms is sent), then
 * one JSON object with the same fields as the Python generator: legs_heard, received, lost
 * (sequence gaps), sent (packets of the measured window), jitter_p50/p99/max_ms (|arrival
 * interval - 20 ms| over consecutive sequence numbers, numpy's linear percentiles), and
 * its own health: sent_total, gen_ticks / gen_ticks_expected, gen_send_errors, gen_late_*
 * (how late each burst started after its deadline), gen_burst_end_* (how late its last
 * packet left, against the same deadline),
 * gen_rx_drops (kernel drops on its own sockets, SO_MEMINFO), gen_cpu (share of a core) and
 * gen_overlap: the share of the server's packets that arrived while it was sending its own
 * burst (the two processes' ticks are not aligned; this says how much their bursts meet).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sock_diag.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define TICK_NS 20000000LL
#define FRAME 160
#define VLEN 16
#define BUFSZ 512

typedef struct {
    int32_t seq;     /* 16-bit sequence number as received */
    int64_t t_ns;    /* kernel receive time (CLOCK_REALTIME), ns */
} arrival_t;

typedef struct {
    int fd;
    arrival_t *a;
    size_t len, cap;
} leg_t;

static void die(const char *what) {
    perror(what);
    exit(2);
}

static int64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec
         + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static int cmp_i64(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* numpy.percentile's default ("linear") on a sorted array */
static double pct(const double *s, size_t n, double q) {
    if (n == 0) return 0.0;
    double pos = (n - 1) * q / 100.0;
    size_t lo = (size_t)floor(pos);
    if (lo + 1 >= n) return s[n - 1];
    return s[lo] + (s[lo + 1] - s[lo]) * (pos - lo);
}

static leg_t *legs;
static int n_legs;
static int recording;
static struct mmsghdr msgs[VLEN];
static struct iovec iovs[VLEN];
static unsigned char bufs[VLEN][BUFSZ];
static unsigned char ctls[VLEN][CMSG_SPACE(sizeof(struct timespec))];

static void drain(int i) {
    leg_t *l = &legs[i];
    for (;;) {
        for (int j = 0; j < VLEN; j++) {
            iovs[j].iov_base = bufs[j];
            iovs[j].iov_len = BUFSZ;
            memset(&msgs[j].msg_hdr, 0, sizeof msgs[j].msg_hdr);
            msgs[j].msg_hdr.msg_iov = &iovs[j];
            msgs[j].msg_hdr.msg_iovlen = 1;
            msgs[j].msg_hdr.msg_control = ctls[j];
            msgs[j].msg_hdr.msg_controllen = sizeof ctls[j];
        }
        int got = recvmmsg(l->fd, msgs, VLEN, MSG_DONTWAIT, NULL);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR) continue;
            die("recvmmsg");
        }
        for (int j = 0; j < got; j++) {
            if (!recording || msgs[j].msg_len < 12) continue;
            int64_t t = 0;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[j].msg_hdr); c;
                 c = CMSG_NXTHDR(&msgs[j].msg_hdr, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(c), sizeof ts);
                    t = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
                }
            }
            if (l->len == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 1024;
                l->a = realloc(l->a, l->cap * sizeof *l->a);
                if (!l->a) die("realloc");
            }
            l->a[l->len].seq = (bufs[j][2] << 8) | bufs[j][3];
            l->a[l->len].t_ns = t;
            l->len++;
        }
        if (got < VLEN) return;
    }
}

static int ep, tfd;
/* small batches: the deadline is checked between them, so a burst of replies being drained
 * delays the next send burst by one batch at most */
static struct epoll_event evs[64];

/* Drain the sockets until ``due`` (CLOCK_MONOTONIC ns); the timerfd wakes us then. */
static void wait_until(int64_t due) {
    struct itimerspec its = {.it_value = {.tv_sec = due / 1000000000LL,
                                          .tv_nsec = due % 1000000000LL}};
    if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) die("timerfd_settime");
    while (now_ns() < due) {
        int got = epoll_wait(ep, evs, sizeof evs / sizeof evs[0], -1);
        if (got < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int e = 0; e < got; e++) {
            uint32_t i = evs[e].data.u32;
            if (i == (uint32_t)n_legs) {
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
                    die("read timerfd");
            } else if (now_ns() < due) {
                drain((int)i);
            }  /* else: the burst first; epoll is level-triggered, the socket comes back */
        }
    }
}

static int *read_ports(int *n) {
    char *line = NULL;
    size_t cap = 0;
    if (getline(&line, &cap, stdin) < 0) die("reading the port list");
    int *ports = NULL, len = 0, pcap = 0;
    for (char *p = line; *p;) {
        if (*p >= '0' && *p <= '9') {
            char *end;
            long v = strtol(p, &end, 10);
            if (len == pcap) {
                pcap = pcap ? pcap * 2 : 256;
                ports = realloc(ports, pcap * sizeof *ports);
                if (!ports) die("realloc");
            }
            ports[len++] = (int)v;
            p = end;
        } else {
            p++;
        }
    }
    free(line);
    *n = len;
    return ports;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s FRAMES_FILE WARMUP_S MEASURE_S [SLOTS] < ports.json\n",
                argv[0]);
        return 2;
    }
    double warmup = atof(argv[2]), measure = atof(argv[3]);
    int slots = argc == 5 ? atoi(argv[4]) : 1;
    if (slots < 1 || slots > 20) {
        fprintf(stderr, "SLOTS: 1 to 20\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) die(argv[1]);
    fseek(f, 0, SEEK_END);
    long fsize = ftell(f);
    fseek(f, 0, SEEK_SET);
    int n_frames = (int)(fsize / FRAME);
    if (n_frames == 0) {
        fprintf(stderr, "%s: no 160-byte frames\n", argv[1]);
        return 2;
    }
    unsigned char *audio = malloc((size_t)n_frames * FRAME);
    if (!audio || fread(audio, FRAME, n_frames, f) != (size_t)n_frames) die("reading frames");
    fclose(f);

    int *ports = read_ports(&n_legs);
    legs = calloc(n_legs, sizeof *legs);
    struct sockaddr_in *dests = calloc(n_legs, sizeof *dests);
    ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    for (int i = 0; i < n_legs; i++) {
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (s < 0) die("socket");
        int rcvbuf = 1 << 18, one = 1;
        setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        if (setsockopt(s, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0)
            die("SO_TIMESTAMPNS");
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
        dests[i] = a;
        dests[i].sin_port = htons((uint16_t)ports[i]);
        legs[i].fd = s;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0) die("epoll_ctl");
    }
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    if (tfd < 0) die("timerfd_create");
    struct epoll_event tev = {.events = EPOLLIN, .data.u32 = (uint32_t)n_legs};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev) < 0) die("epoll_ctl timer");

    long k_first = lround(warmup / 0.020), k_end = k_first + lround(measure / 0.020);
    long n_sends = (k_end - k_first) * slots;  /* send bursts in the window */
    double *late = calloc(n_sends + 1, sizeof *late);
    double *burst_end = calloc(n_sends + 1, sizeof *burst_end);
    unsigned char pkt[12 + FRAME];
    long sent = 0, sent_total = 0, send_errors = 0, bursts = 0;
    double cpu0 = 0, cpu1 = 0;
    int64_t t_mark = 0, t_end = 0;
    /* development aid: LOADGEN_TRACE=file gets "tick slot start_late_ms end_late_ms" lines */
    FILE *trace = getenv("LOADGEN_TRACE") ? fopen(getenv("LOADGEN_TRACE"), "w") : NULL;
    int64_t start = now_ns() + 50000000LL;
    int64_t to_realtime = clock_ns(CLOCK_REALTIME) - now_ns();  /* kernel stamps' clock */

    for (long k = 0; k <= k_end; k++) {
        uint16_t seq = (uint16_t)(k & 0xffff);
        uint32_t ts = (uint32_t)(k * FRAME);
        pkt[0] = 0x80;
        pkt[1] = 0;
        pkt[2] = seq >> 8;
        pkt[3] = seq & 0xff;
        pkt[4] = ts >> 24;
        pkt[5] = (ts >> 16) & 0xff;
        pkt[6] = (ts >> 8) & 0xff;
        pkt[7] = ts & 0xff;
        for (int slot = 0; slot < slots; slot++) {
            int64_t due = start + k * TICK_NS + slot * TICK_NS / slots;
            if (k == k_first && slot == 0) {
                recording = 1;
                cpu0 = cpu_s();
                t_mark = now_ns();
                fputs("mark\n", stdout);
                fflush(stdout);
            }
            wait_until(due);
            if (k == k_end) break;  /* the window ends at tick k_end's deadline */
            int64_t began = now_ns();
            long ok = 0;
            for (int i = slot; i < n_legs; i += slots) {
                uint32_t ssrc = 0x1000 + (uint32_t)i;
                pkt[8] = ssrc >> 24;
                pkt[9] = (ssrc >> 16) & 0xff;
                pkt[10] = (ssrc >> 8) & 0xff;
                pkt[11] = ssrc & 0xff;
                long frame = ((long)i * 37 % n_frames + k) % n_frames;
                memcpy(pkt + 12, audio + frame * FRAME, FRAME);
                if (sendto(legs[i].fd, pkt, sizeof pkt, 0, (struct sockaddr *)&dests[i],
                           sizeof dests[i]) == (ssize_t)sizeof pkt)
                    ok++;
                else
                    send_errors++;
            }
            int64_t finished = now_ns();
            if (trace)
                fprintf(trace, "%ld %d %.3f %.3f\n", k, slot, (began - due) / 1e6,
                        (finished - due) / 1e6);
            sent_total += ok;
            if (k >= k_first) {
                sent += ok;
                late[bursts] = (began - due) / 1e6;
                burst_end[bursts] = (finished - due) / 1e6;
                bursts++;
            }
        }
    }
    /* what arrived by the end of the window and is still queued */
    for (int i = 0; i < n_legs; i++) drain(i);
    recording = 0;
    if (trace) fclose(trace);
    t_end = now_ns();
    cpu1 = cpu_s();

    long gen_rx_drops = 0;
    for (int i = 0; i < n_legs; i++) {
        uint32_t mem[SK_MEMINFO_VARS] = {0};
        socklen_t len = sizeof mem;
        if (getsockopt(legs[i].fd, SOL_SOCKET, SO_MEMINFO, mem, &len) == 0
            && len > SK_MEMINFO_DROPS * sizeof(uint32_t))
            gen_rx_drops += mem[SK_MEMINFO_DROPS];
    }

    /* the measurement, as the Python generator computes it with numpy */
    size_t n_dev = 0, dev_cap = 0;
    for (int i = 0; i < n_legs; i++) dev_cap += legs[i].len;
    double *dev = malloc((dev_cap + 1) * sizeof *dev);
    long received = 0, lost = 0, heard = 0, in_window = 0, overlapping = 0;
    for (int i = 0; i < n_legs; i++) {
        leg_t *l = &legs[i];
        if (l->len) heard++;
        if (l->len < 2) continue;
        int64_t *u = malloc(l->len * sizeof *u);
        u[0] = l->a[0].seq;
        for (size_t j = 0; j < l->len; j++) {  /* did it arrive during one of our bursts? */
            int64_t rel = l->a[j].t_ns - (start + to_realtime), k = rel / TICK_NS;
            if (rel < 0 || k < k_first || k >= k_end) continue;
            int64_t into = rel - k * TICK_NS, slot = into * slots / TICK_NS;
            in_window++;
            overlapping += into - slot * TICK_NS / slots
                           <= burst_end[(k - k_first) * slots + slot] * 1e6;
        }
        for (size_t j = 1; j < l->len; j++) {  /* numpy.unwrap(period=65536) */
            int64_t d = l->a[j].seq - l->a[j - 1].seq, dd = d;
            if (d >= 32768 || d <= -32768) {
                dd = ((d + 32768) % 65536 + 65536) % 65536 - 32768;
                if (dd == -32768 && d > 0) dd = 32768;
            }
            u[j] = u[j - 1] + dd;
            if (dd == 1) {
                double iv = (l->a[j].t_ns - l->a[j - 1].t_ns) / 1e6;
                dev[n_dev++] = fabs(iv - 20.0);
            }
        }
        qsort(u, l->len, sizeof *u, cmp_i64);
        long uniq = 1;
        for (size_t j = 1; j < l->len; j++) uniq += u[j] != u[j - 1];
        received += uniq;
        lost += (long)(u[l->len - 1] - u[0] + 1 - uniq);
        free(u);
    }
    if (n_dev == 0) dev[n_dev++] = 0.0;
    qsort(dev, n_dev, sizeof *dev, cmp_double);
    qsort(late, bursts, sizeof *late, cmp_double);
    qsort(burst_end, bursts, sizeof *burst_end, cmp_double);
    double wall = (t_end - t_mark) / 1e9;
    printf("{\"loadgen\": \"c\", \"legs_heard\": %ld, \"received\": %ld, \"lost\": %ld, "
           "\"sent\": %ld, \"jitter_p50_ms\": %.6f, \"jitter_p99_ms\": %.6f, "
           "\"jitter_max_ms\": %.6f, \"sent_total\": %ld, \"gen_ticks\": %ld, "
           "\"gen_ticks_expected\": %ld, \"gen_send_errors\": %ld, \"gen_late_p50_ms\": %.4f, "
           "\"gen_late_p99_ms\": %.4f, \"gen_late_max_ms\": %.4f, "
           "\"gen_burst_end_p50_ms\": %.4f, \"gen_burst_end_p99_ms\": %.4f, "
           "\"gen_burst_end_max_ms\": %.4f, \"gen_rx_drops\": %ld, \"gen_cpu\": %.4f, "
           "\"gen_overlap\": %.4f}\n",
           heard, received, lost, sent, pct(dev, n_dev, 50), pct(dev, n_dev, 99),
           dev[n_dev - 1], sent_total, bursts / slots, k_end - k_first, send_errors,
           pct(late, bursts, 50), pct(late, bursts, 99), bursts ? late[bursts - 1] : 0.0,
           pct(burst_end, bursts, 50), pct(burst_end, bursts, 99),
           bursts ? burst_end[bursts - 1] : 0.0, gen_rx_drops,
           wall > 0 ? (cpu1 - cpu0) / wall : 0.0,
           in_window ? (double)overlapping / in_window : 0.0);
    fflush(stdout);
    return 0;
}
