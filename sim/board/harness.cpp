// tensorfab simulated board: serves a Verilated board top over TCP (docs/protocol.md bytes).
//
//   board_sim --port P [--pin-level --clk-hz HZ --baud B]
//
// One client at a time on 127.0.0.1:P; a new client may connect after the previous one left.
// Byte face (default): received TCP bytes go into the top's rx stream, tx stream bytes go
// back out. When the board waits for input (rx ready, nothing to send, no bytes pending) the
// harness blocks on the socket instead of ticking, so an idle board costs no CPU and a busy
// one runs flat out. Pin-level face (--pin-level, built with -DPIN_LEVEL): the harness
// drives the UART RX pin and decodes the TX pin at the board's bit period instead, and
// likewise stops clocking while both lines are quiet and the board's `idle` output is high,
// so the cycle count is the time the link and the board were busy.
//
// Prints "listening on 127.0.0.1:P" on stdout once it accepts connections; prints the cycle
// count and rate to stderr when a client leaves. SIGINT/SIGTERM end it; SIGUSR1 resets the
// board (as a power cycle would) and prints "reset" on stdout.

#include <arpa/inet.h>
#include <cerrno>
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
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (sockaddr*)&addr, sizeof addr) < 0) {
        fprintf(stderr, "port %d: %s\n", port, strerror(errno));
        exit(2);
    }
    if (listen(fd, 1) < 0) { perror("listen"); exit(1); }
    return fd;
}

// Move bytes between the socket and the queues without blocking (or waiting up to
// timeout_ms for something to read). Returns false when the client has gone.
static bool pump(int fd, std::deque<uint8_t>& in, std::deque<uint8_t>& out, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    if (!out.empty()) p.events |= POLLOUT;
    int r = poll(&p, 1, timeout_ms);
    if (r < 0) return errno == EINTR;
    if (r == 0) return true;
    if (p.revents & (POLLERR | POLLNVAL)) return false;
    if (p.revents & (POLLIN | POLLHUP)) {
        uint8_t buf[65536];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0) return false;
        if (n < 0) return errno == EAGAIN || errno == EINTR;
        in.insert(in.end(), buf, buf + n);
    }
    if ((p.revents & POLLOUT) && !out.empty()) {
        uint8_t buf[65536];
        size_t n = out.size() < sizeof buf ? out.size() : sizeof buf;
        std::copy(out.begin(), out.begin() + n, buf);
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w < 0) return errno == EAGAIN || errno == EINTR;
        out.erase(out.begin(), out.begin() + w);
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
    bool pin_level = false;
    double clk_hz = 0, baud = 0;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--port" && i + 1 < argc) port = atoi(argv[++i]);
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
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: %s --port P [--pin-level --clk-hz HZ --baud B]\n", argv[0]);
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
        double busy_s = 0;
        bool alive = true;
        while (alive && !g_stop) {
            do_reset(&in);
            bool idle;
            auto tb = std::chrono::steady_clock::now();
#ifdef PIN_LEVEL
            bool active = false;
            int n = 0;
            for (; n < 65536; n++) {
                // waiting for the host: nothing to send on RX, nothing arriving on TX, and
                // the board idle (its `idle` output and TX line are functions of registers)
                if (in.empty() && !uart.tx_busy && !uart.rx_busy && b.top->PORT_UART_TX
                    && b.top->PORT_IDLE) break;
                b.top->PORT_UART_RX = uart.step(in, b.top->PORT_UART_TX, out, active);
                b.tick();
            }
            idle = n < 65536;
#else
            auto* t = b.top.get();
            int n = 0;
            for (; n < 65536; n++) {
                bool has = !in.empty();
                t->PORT_RX_VALID = has;
                if (has) t->PORT_RX_PAYLOAD = in.front();
                // rx ready, tx valid/payload and idle come from registers only (the byte
                // face's FIFOs and the engine's state), so the values evaluated after the
                // last edge still hold: no eval here. The rising-edge eval settles the new
                // inputs first (Verilator's input-combinational stage).
                bool rx_fire = has && t->PORT_RX_READY;
                bool tx_fire = t->PORT_TX_VALID;  // tx__ready is always 1
                uint8_t tx_byte = t->PORT_TX_PAYLOAD;
                if (!has && t->PORT_IDLE) break;  // waiting for the host
                b.tick();
                if (rx_fire) in.pop_front();
                if (tx_fire) out.push_back(tx_byte);
            }
            idle = n < 65536;
#endif
            busy_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - tb).count();
            // An idle board waits for the host.
            int wait_ms = idle && out.empty() ? 100 : 0;
            alive = pump(fd, in, out, wait_ms);
            while (alive && !out.empty() && idle && !g_reset) alive = pump(fd, in, out, 100);
        }
        close(fd);
        double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        uint64_t nc = b.cycles - c0;
        fprintf(stderr, "client left: %llu cycles in %.3f s (%.0f cycles/s while busy, %.3f s busy)\n",
                (unsigned long long)nc, wall, busy_s > 0 ? nc / busy_s : 0.0, busy_s);
    }
    close(lfd);
    b.top->final();
    return 0;
}
