// tensorfab simulated board: serves a Verilated board top over TCP (docs/protocol.md bytes).
//
//   board_sim --port P [--idle-timeout S] [--pin-level --clk-hz HZ --baud B]
//
// Sessions (docs/protocol.md, "Sessions"): one host at a time on 127.0.0.1:P, as on a UART.
// A client that connects while another holds the board gets a NAK frame with code BUSY (op 0,
// seq 0) and is closed at once; a session with no bytes moving either way for --idle-timeout
// seconds (default 300) gets a NAK frame with code IDLE and is closed. Bytes of a session that
// ended (the peer closed or shut down its sending side) and were not yet taken by the board are
// discarded, and the board finishes what it was doing, with its replies dropped, before the
// next session's bytes reach it. Back-pressure: at most IN_MAX bytes wait for the board and at
// most OUT_MAX reply bytes wait for the client; past those the harness stops reading from the
// socket, or stops clocking the board, so its memory does not grow with what a client sends
// (the kernel's socket buffers are bounded too: SOCK_BUF).
// Byte face (default): received TCP bytes go into the top's rx stream, tx stream bytes go
// back out. When the board waits for input (rx ready, nothing to send, no bytes pending) the
// harness blocks on the socket instead of ticking, so an idle board costs no CPU and a busy
// one runs flat out. Pin-level face (--pin-level, built with -DPIN_LEVEL): the harness
// drives the UART RX pin and decodes the TX pin at the board's bit period instead, and
// likewise stops clocking while both lines are quiet and the board's `idle` output is high,
// so the cycle count is the time the link and the board were busy.
//
// Prints "listening on 127.0.0.1:P" on stdout once it accepts connections; prints one line to
// stderr per session (its cycle count and rate, or why it was refused or closed). Those lines
// never block the board: a line that does not fit a full stderr pipe is dropped and counted
// (the next line that fits says how many were). SIGINT/SIGTERM end it; SIGUSR1 resets the
// board (as a power cycle would) and prints "reset" on stdout.

#include <arpa/inet.h>
#include <cerrno>
#include <cstdarg>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <memory>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

#include "Vtensorfab_board.h"
#include "verilated.h"
// Generated from the board's manifest (sim/board/__init__.py, ports_header): PORT_<NAME>, the
// C++ member Verilator makes of each top port (it spells Amaranth's `__` as `___05F`), and
// PORT_<NAME>_WIDTH; unit_gate(top): the units whose clock runs this cycle (their u<i>_active
// outputs, which depend on registers only); unit_clocks(top, mask): drive their u<i>_clk.
#include "board_ports.h"

#ifdef PIN_LEVEL
static_assert(PORT_UART_RX_WIDTH == 1 && PORT_UART_TX_WIDTH == 1, "UART pins are one bit");
#else
static_assert(PORT_RX_PAYLOAD_WIDTH == 8 && PORT_TX_PAYLOAD_WIDTH == 8,
              "the byte face carries bytes");
#endif

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int) { g_stop = 1; }
// SIGUSR1: reset the board (a board reset or power cycle in the middle of whatever it is
// doing, for fault-injection tests); the harness prints "reset" on stdout once it is done.
static volatile sig_atomic_t g_reset = 0;
static void on_reset(int) { g_reset = 1; }

// Session NAK codes (host/protocol.py NakCode): sent by the harness, not the board, in a NAK
// frame for op 0 with seq 0 just before it closes a connection.
static const uint8_t NAK_BUSY = 10;
static const uint8_t NAK_IDLE = 11;
// Back-pressure bounds (bytes): input waiting for the board, replies waiting for the client.
static const size_t IN_MAX = 1 << 16;
static const size_t OUT_MAX = 1 << 16;
// Kernel socket buffer size asked for each session's socket (each direction).
static const size_t SOCK_BUF = 1 << 16;

// One stderr line that never blocks: written only when stderr takes it now (a pipe nobody
// reads fills up); otherwise dropped and counted, and the count is told with the next line.
static unsigned long long g_dropped = 0;
static void log_line(const char* fmt, ...) {
    char buf[512];
    int n = 0;
    if (g_dropped)
        n = snprintf(buf, sizeof buf, "(%llu log lines dropped: stderr was full) ", g_dropped);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
    va_end(ap);
    n += m < 0 ? 0 : (m < (int)(sizeof buf - n - 1) ? m : (int)(sizeof buf - n - 2));
    buf[n++] = '\n';
    pollfd p{2, POLLOUT, 0};
    if (poll(&p, 1, 0) == 1 && (p.revents & POLLOUT)) {
        // a pipe that polls writable has a free page: a line under PIPE_BUF fits whole
        ssize_t w = write(2, buf, n);
        if (w == n) { g_dropped = 0; return; }
    }
    g_dropped++;
}

// CRC-16/CCITT-FALSE and COBS, for the session NAK frames (docs/protocol.md, "Frames").
static uint16_t crc16(const uint8_t* d, size_t n) {
    uint16_t c = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        c ^= (uint16_t)(d[i] << 8);
        for (int b = 0; b < 8; b++) c = (c & 0x8000) ? (uint16_t)((c << 1) ^ 0x1021) : (uint16_t)(c << 1);
    }
    return c;
}
static std::string session_nak(uint8_t code) {
    uint8_t pkt[10] = {1, 0x7F, 0, 0, 2, 0, 0, code, 0, 0};  // ver, NAK, seq 0, len 2, op 0
    uint16_t c = crc16(pkt, 8);
    pkt[8] = (uint8_t)(c >> 8);
    pkt[9] = (uint8_t)c;
    std::string out;
    size_t code_at = 0;
    out.push_back(1);
    for (uint8_t b : pkt) {  // no run reaches 254 bytes in 10
        if (b == 0) { code_at = out.size(); out.push_back(1); }
        else { out.push_back((char)b); out[code_at]++; }
    }
    out.push_back(0);
    return out;
}
// Best effort: the NAK, then close (a peer that does not read loses it, nothing waits).
static void refuse(int fd, uint8_t code) {
    std::string f = session_nak(code);
    (void)!send(fd, f.data(), f.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(fd, SHUT_WR);
    // take what it already sent (unexecuted), so that the close is an orderly one and the
    // NAK is not overtaken by a reset
    uint8_t buf[4096];
    for (int i = 0; i < 16 && recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0; i++) {}
    close(fd);
}

struct Board {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Vtensorfab_board> top;
    uint64_t cycles = 0;
    Board(int argc, char** argv) : ctx(new VerilatedContext) {
        ctx->commandArgs(argc, argv);
        top.reset(new Vtensorfab_board{ctx.get()});
        top->PORT_CLK = 0;
        top->PORT_RST = 1;
#ifdef PIN_LEVEL
        top->PORT_UART_RX = 1;
#else
        top->PORT_RX_VALID = 0;
        top->PORT_TX_READY = 1;
#endif
        reset();
    }
    // Hold rst for a few cycles (every unit clocked), as at power-on.
    void reset() {
        top->PORT_RST = 1;
        top->eval();
        for (int i = 0; i < 4; i++) tick(~0u);  // every unit sees the reset
        top->PORT_RST = 0;
        top->eval();
    }
    // One clock cycle: inputs are set, comb outputs already evaluated before the call. The
    // units' clocks rise with clk only while the design says they are active (the byte face
    // gates idle units; see boards/top.py BoardTop), so idle units cost no evaluation.
    inline void tick(uint32_t force = 0) {
        Vtensorfab_board* t = top.get();
        uint32_t g = unit_gate(t) | force;
        t->PORT_CLK = 1;
        unit_clocks(t, g);
        t->eval();
        t->PORT_CLK = 0;
        unit_clocks(t, 0);
        t->eval();
        cycles++;
    }
};

static int listen_on(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) { perror("socket"); exit(1); }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // Small kernel buffers for the accepted sockets (they inherit these): the bytes held for
    // one session in the kernel stay bounded as well (Linux doubles the value), and a host
    // that does not read is stuck, hence idle, after a few replies, not after megabytes.
    int kbuf = (int)SOCK_BUF;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kbuf, sizeof kbuf);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kbuf, sizeof kbuf);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (sockaddr*)&addr, sizeof addr) < 0) {
        fprintf(stderr, "port %d: %s\n", port, strerror(errno));
        exit(2);
    }
    if (listen(fd, 16) < 0) { perror("listen"); exit(1); }
    return fd;
}

// Move bytes between the socket and the queues without blocking (or waiting up to
// timeout_ms for something to happen), refusing hosts that connect to lfd meanwhile. Reads
// only while fewer than IN_MAX bytes wait for the board. Returns false when the client has
// gone (closed, reset, or shut down its sending side: its unread bytes are then dropped).
// ``moved`` is set when a byte went either way.
static bool pump(int fd, int lfd, std::deque<uint8_t>& in, std::deque<uint8_t>& out,
                 int timeout_ms, bool& moved) {
    pollfd p[2] = {{fd, POLLRDHUP, 0}, {lfd, POLLIN, 0}};
    if (in.size() < IN_MAX) p[0].events |= POLLIN;
    if (!out.empty()) p[0].events |= POLLOUT;
    int r = poll(p, 2, timeout_ms);
    if (r < 0) return errno == EINTR;
    if (r == 0) return true;
    short ev = p[0].revents;
    // the session's end first: a host that connects right after the last one closed (the
    // two arriving in one poll) is the next session, not a second host
    if (ev & (POLLERR | POLLNVAL | POLLRDHUP | POLLHUP)) return false;
    if (p[1].revents & POLLIN) {
        int other = accept(lfd, nullptr, nullptr);
        if (other >= 0) {
            refuse(other, NAK_BUSY);
            log_line("refused a second host (BUSY): one host at a time");
        }
    }
    if ((ev & POLLIN) && in.size() < IN_MAX) {
        uint8_t buf[65536];
        size_t room = IN_MAX - in.size();
        ssize_t n = recv(fd, buf, room < sizeof buf ? room : sizeof buf, 0);
        if (n == 0) return false;
        if (n < 0) return errno == EAGAIN || errno == EINTR;
        in.insert(in.end(), buf, buf + n);
        moved = true;
    }
    if ((ev & POLLOUT) && !out.empty()) {
        uint8_t buf[65536];
        size_t n = out.size() < sizeof buf ? out.size() : sizeof buf;
        std::copy(out.begin(), out.begin() + n, buf);
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w < 0) return errno == EAGAIN || errno == EINTR;
        out.erase(out.begin(), out.begin() + w);
        if (w > 0) moved = true;
    }
    return true;
}

#ifdef PIN_LEVEL
// UART 8N1 on the pins at clk_hz/baud cycles a bit (fractional: bit edges at round(k*P)).
struct PinUart {
    double period;
    // transmitter (harness -> board RX pin)
    bool tx_busy = false; uint16_t tx_bits = 0; int tx_bit = 0; double tx_t = 0;
    // receiver (board TX pin -> harness)
    bool rx_busy = false; int rx_bit = 0; double rx_t = 0; uint8_t rx_sr = 0;
    explicit PinUart(double p) : period(p) {}
    // One cycle: returns the RX pin level; may push a decoded byte into out.
    int step(std::deque<uint8_t>& in, int tx_pin, std::deque<uint8_t>& out, bool& active) {
        if (!tx_busy && !in.empty()) {
            tx_bits = (uint16_t)((1u << 9) | (in.front() << 1));
            in.pop_front();
            tx_busy = true; tx_bit = 0; tx_t = 0;
        }
        int level = 1;
        if (tx_busy) {
            active = true;
            level = (tx_bits >> tx_bit) & 1;
            tx_t += 1;
            if (tx_t >= (tx_bit + 1) * period) {
                if (++tx_bit == 10) tx_busy = false;
            }
        }
        if (!rx_busy) {
            if (!tx_pin) { rx_busy = true; rx_bit = 0; rx_t = 0; rx_sr = 0; }
        } else {
            active = true;
            rx_t += 1;
            if (rx_t >= (rx_bit + 0.5) * period) {
                if (rx_bit >= 1 && rx_bit <= 8) rx_sr |= (uint8_t)(tx_pin << (rx_bit - 1));
                if (rx_bit == 0 && tx_pin) rx_busy = false;  // glitch
                else if (rx_bit == 9) { if (tx_pin) out.push_back(rx_sr); rx_busy = false; }
                rx_bit++;
            }
        }
        return level;
    }
};
#endif

int main(int argc, char** argv) {
    int port = 0;
    double idle_timeout = 300;
    bool pin_level = false;
    double clk_hz = 0, baud = 0;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--port" && i + 1 < argc) port = atoi(argv[++i]);
        else if (a == "--idle-timeout" && i + 1 < argc) idle_timeout = atof(argv[++i]);
        else if (a == "--pin-level") pin_level = true;
        else if (a == "--clk-hz" && i + 1 < argc) clk_hz = atof(argv[++i]);
        else if (a == "--baud" && i + 1 < argc) baud = atof(argv[++i]);
    }
#ifdef PIN_LEVEL
    if (!pin_level || clk_hz <= 0 || baud <= 0) {
        fprintf(stderr, "this build is pin-level: give --pin-level --clk-hz HZ --baud B\n");
        return 2;
    }
#else
    if (pin_level) {
        fprintf(stderr, "this build serves the byte face; build with -DPIN_LEVEL for pins\n");
        return 2;
    }
#endif
    if (port <= 0 || port > 65535 || !(idle_timeout > 0)) {
        fprintf(stderr, "usage: %s --port P [--idle-timeout S (> 0)] [--pin-level --clk-hz HZ "
                "--baud B]\n", argv[0]);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR1, on_reset);

    Board b(argc, argv);
    int lfd = listen_on(port);
    printf("listening on 127.0.0.1:%d\n", port);
    fflush(stdout);
#ifdef PIN_LEVEL
    PinUart uart(clk_hz / baud);
#endif

    // A requested reset: the board restarts; bytes the harness held for it (a link FIFO's
    // contents) are lost, bytes it already sent stay sent.
    auto do_reset = [&](std::deque<uint8_t>* in) {
        if (!g_reset) return;
        g_reset = 0;
        b.reset();
#ifdef PIN_LEVEL
        uart = PinUart(clk_hz / baud);
#endif
        if (in) in->clear();
        printf("reset\n");
        fflush(stdout);
    };

    while (!g_stop) {
        do_reset(nullptr);
        pollfd lp{lfd, POLLIN, 0};
        if (poll(&lp, 1, 200) <= 0) continue;
        int fd = accept(lfd, nullptr, nullptr);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        std::deque<uint8_t> in, out;
        uint64_t c0 = b.cycles;
        auto t0 = std::chrono::steady_clock::now();
        auto last = t0;  // the last time a byte moved or the board worked
        double busy_s = 0;
        bool alive = true;       // the session is on; once false the board drains
        const char* why = "client left";
        // One pump of the socket; ends the session (false) when the client went or was idle
        // for idle_timeout seconds (it then gets the IDLE NAK).
        auto step = [&](int ms, bool worked) {
            bool moved = false;
            bool ok = pump(fd, lfd, in, out, ms, moved);
            auto now = std::chrono::steady_clock::now();
            if (moved || worked) last = now;
            else if (ok && std::chrono::duration<double>(now - last).count() >= idle_timeout) {
                why = "closed an idle session (IDLE)";
                refuse(fd, NAK_IDLE);
                fd = -1;
                return false;
            }
            return ok;
        };
        while (!g_stop) {
            do_reset(&in);
            bool waiting = false;  // the board waits for the host
            auto tb = std::chrono::steady_clock::now();
            int n = 0;
#ifdef PIN_LEVEL
            bool active = false;
            std::deque<uint8_t> empty;
            std::deque<uint8_t>& feed = alive ? in : empty;
            for (; n < 65536; n++) {
                if (out.size() >= OUT_MAX) break;  // back-pressure: the client does not read
                // waiting for the host: nothing to send on RX, nothing arriving on TX, and
                // the board idle (its `idle` output and TX line are functions of registers)
                if (feed.empty() && !uart.tx_busy && !uart.rx_busy && b.top->PORT_UART_TX
                    && b.top->PORT_IDLE) { waiting = true; break; }
                b.top->PORT_UART_RX = uart.step(feed, b.top->PORT_UART_TX, out, active);
                b.tick();
            }
#else
            auto* t = b.top.get();
            static const std::deque<uint8_t> none;
            const std::deque<uint8_t>& feed = alive ? in : none;
            for (; n < 65536; n++) {
                if (out.size() >= OUT_MAX) break;  // back-pressure: the client does not read
                bool has = !feed.empty();
                t->PORT_RX_VALID = has;
                if (has) t->PORT_RX_PAYLOAD = feed.front();
                // rx ready, tx valid/payload and idle come from registers only (the byte
                // face's FIFOs and the engine's state), so the values evaluated after the
                // last edge still hold: no eval here. The rising-edge eval settles the new
                // inputs first (Verilator's input-combinational stage).
                bool rx_fire = has && t->PORT_RX_READY;
                bool tx_fire = t->PORT_TX_VALID;  // tx__ready is always 1
                uint8_t tx_byte = t->PORT_TX_PAYLOAD;
                if (!has && t->PORT_IDLE) { waiting = true; break; }  // waiting for the host
                b.tick();
                if (rx_fire) in.pop_front();
                if (tx_fire) out.push_back(tx_byte);
            }
#endif
            busy_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - tb).count();
            if (!alive) {
                // the session is over: the board finishes its request, its replies dropped
                // (a host connecting meanwhile waits in the listen queue; one that gives up
                // there is seen closed when it is accepted, and none of its bytes run)
                out.clear();
                if (waiting) break;
                continue;
            }
            // An idle board waits for the host; a full reply queue waits for the client.
            bool blocked = out.size() >= OUT_MAX;
            int wait_ms = (waiting && out.empty()) || blocked ? 100 : 0;
            alive = step(wait_ms, n > 0);
            while (alive && !out.empty() && (waiting || out.size() >= OUT_MAX) && !g_reset
                   && !g_stop)
                alive = step(100, false);
            if (!alive) in.clear();  // bytes of a session that ended are never executed
        }
        if (fd >= 0) close(fd);
        double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        uint64_t nc = b.cycles - c0;
        log_line("%s: %llu cycles in %.3f s (%.0f cycles/s while busy, %.3f s busy)", why,
                 (unsigned long long)nc, wall, busy_s > 0 ? nc / busy_s : 0.0, busy_s);
    }
    close(lfd);
    b.top->final();
    return 0;
}
