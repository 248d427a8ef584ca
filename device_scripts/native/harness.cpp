// mobileseg native ncnn harness: times one ncnn model on a device that has no Python.
//
// Runs ON the device and depends on nothing but ncnn (linked statically). It writes the same contract as
// device_scripts/harness.py (see device_scripts/README.md): a timings JSON with every per-iteration time and the
// settings that change numerics or speed, and the output tensor as raw float32 (C order) with its shape in the JSON.
//
// Every ncnn switch that differs between platforms is set explicitly: ncnn enables fp16 storage/arithmetic by
// default and uses it silently on ARM CPUs with asimdhp, which would make an "fp32" measurement an fp16 one.

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

#include "cpu.h"
#include "net.h"
#include "platform.h"
#if NCNN_VULKAN
#include "gpu.h"
#endif

#if defined(__aarch64__)
#define MOBILESEG_MACHINE "aarch64"
#elif defined(__x86_64__)
#define MOBILESEG_MACHINE "x86_64"
#else
#define MOBILESEG_MACHINE "unknown"
#endif

#ifndef MOBILESEG_NCNN_VERSION
#define MOBILESEG_NCNN_VERSION NCNN_VERSION_STRING
#endif

namespace {

const int kExitUsage = 2;
const int kExitRuntime = 3;

struct Args
{
    std::string param, bin, input, timings, output;
    std::string input_name = "in0", output_name = "out0";
    std::vector<int> shape;
    int threads = 1;
    int warmup = 3;
    int repeats = 10;
    double min_time_ms = 0.0;
    int max_repeats = 100000;
    bool fp16 = false;
    bool int8 = false;
    bool bf16 = false;
    bool packing = true;
    bool winograd = true;
    bool sgemm = true;
    int flush_denormals = 3;
    bool light_mode = true;
    bool vulkan = false;      // ncnn-vulkan: only in a harness built with `mobileseg harness build --vulkan --ndk`
    int vulkan_device = -1;   // -1: ncnn's default device
    double target_ci_pct = 0; // > 0: sample until the median's 95% interval is within this percent (--max-time-ms)
    double max_time_ms = 30000;
    int min_repeats = 10;
    std::string intermediates;  // per-layer mode: every blob into this file instead of timing (dump_intermediates)
};

void usage()
{
    std::fprintf(stderr,
                 "usage: mobileseg-ncnn-harness --param M.param --bin M.bin --input IN.npy|IN.raw [--shape 1,3,H,W]\n"
                 "         --timings OUT.json --output OUT.npy|OUT.raw [--input-name in0] [--output-name out0]\n"
                 "         [--threads 1] [--warmup 3] [--repeats 10 | --repeats 0 --min-time-ms T] [--max-repeats 100000]\n"
                 "         [--fp16 0|1] [--int8 0|1] [--bf16 0|1] [--packing 0|1] [--winograd 0|1] [--sgemm 0|1]\n"
                 "         [--flush-denormals 0..3] [--light-mode 0|1] [--vulkan 0|1] [--vulkan-device N]\n"
                 "         [--target-ci-pct P [--max-time-ms T] [--min-repeats 10]]\n"
                 "         [--intermediates OUT.bin]   (instead of timing: every layer's output blob into one file)\n"
                 "Inputs/outputs are float32 NCHW, C order: .npy, or raw (then --shape is required for the input).\n"
                 "All fp16/int8/bf16 switches are off unless asked.\n");
}

std::string g_timings_path;  // where fail() reports the error, as the Python harness does

std::string json_str(const std::string& s);

[[noreturn]] void fail(int code, const std::string& msg)
{
    std::fprintf(stderr, "mobileseg-ncnn-harness: %s\n", msg.c_str());
    if (!g_timings_path.empty())
    {
        FILE* f = std::fopen(g_timings_path.c_str(), "wb");
        if (f)
        {
            std::string j = "{\"ok\": false, \"harness\": \"native-ncnn\", \"runtime\": \"ncnn\", \"error\": " + json_str(msg) + "}\n";
            std::fwrite(j.data(), 1, j.size(), f);
            std::fclose(f);
        }
    }
    std::exit(code);
}

bool parse_int(const char* s, int& v)
{
    char* end = nullptr;
    long x = std::strtol(s, &end, 10);
    if (end == s || *end) return false;
    v = (int)x;
    return true;
}

bool parse_bool(const char* s, bool& v)
{
    if (!std::strcmp(s, "1") || !std::strcmp(s, "true") || !std::strcmp(s, "on")) v = true;
    else if (!std::strcmp(s, "0") || !std::strcmp(s, "false") || !std::strcmp(s, "off")) v = false;
    else return false;
    return true;
}

std::vector<int> parse_shape(const std::string& s)
{
    std::vector<int> shape;
    size_t start = 0;
    while (start <= s.size())
    {
        size_t comma = s.find_first_of(",x", start);
        std::string part = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        int d = 0;
        if (!parse_int(part.c_str(), d) || d <= 0) return std::vector<int>();
        shape.push_back(d);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return shape;
}

Args parse_args(int argc, char** argv)
{
    Args a;
    for (int i = 1; i < argc; i++)
    {
        std::string k = argv[i];
        if (k == "-h" || k == "--help")
        {
            usage();
            std::exit(0);
        }
        if (i + 1 >= argc) fail(kExitUsage, "option " + k + " needs a value (see --help)");
        const char* v = argv[++i];
        bool ok = true;
        if (k == "--param") a.param = v;
        else if (k == "--bin") a.bin = v;
        else if (k == "--input") a.input = v;
        else if (k == "--timings") a.timings = v;
        else if (k == "--output") a.output = v;
        else if (k == "--input-name") a.input_name = v;
        else if (k == "--output-name") a.output_name = v;
        else if (k == "--intermediates") a.intermediates = v;
        else if (k == "--shape") ok = !(a.shape = parse_shape(v)).empty();
        else if (k == "--threads") ok = parse_int(v, a.threads) && a.threads >= 1;
        else if (k == "--warmup") ok = parse_int(v, a.warmup) && a.warmup >= 0;
        else if (k == "--repeats") ok = parse_int(v, a.repeats) && a.repeats >= 0;
        else if (k == "--max-repeats") ok = parse_int(v, a.max_repeats) && a.max_repeats >= 1;
        else if (k == "--min-time-ms")
        {
            char* end = nullptr;
            a.min_time_ms = std::strtod(v, &end);
            ok = end != v && !*end && a.min_time_ms >= 0;
        }
        else if (k == "--fp16") ok = parse_bool(v, a.fp16);
        else if (k == "--int8") ok = parse_bool(v, a.int8);
        else if (k == "--bf16") ok = parse_bool(v, a.bf16);
        else if (k == "--packing") ok = parse_bool(v, a.packing);
        else if (k == "--winograd") ok = parse_bool(v, a.winograd);
        else if (k == "--sgemm") ok = parse_bool(v, a.sgemm);
        else if (k == "--light-mode") ok = parse_bool(v, a.light_mode);
        else if (k == "--vulkan") ok = parse_bool(v, a.vulkan);
        else if (k == "--vulkan-device") ok = parse_int(v, a.vulkan_device) && a.vulkan_device >= 0;
        else if (k == "--target-ci-pct" || k == "--max-time-ms")
        {
            char* end = nullptr;
            double x = std::strtod(v, &end);
            ok = end != v && !*end && x > 0;
            (k == "--target-ci-pct" ? a.target_ci_pct : a.max_time_ms) = x;
        }
        else if (k == "--min-repeats") ok = parse_int(v, a.min_repeats) && a.min_repeats >= 1;
        else if (k == "--flush-denormals") ok = parse_int(v, a.flush_denormals) && a.flush_denormals >= 0 && a.flush_denormals <= 3;
        else fail(kExitUsage, "unknown option " + k + " (see --help)");
        if (!ok) fail(kExitUsage, "bad value '" + std::string(v) + "' for " + k);
    }
    g_timings_path = a.timings;
    if (a.param.empty() || a.bin.empty() || a.input.empty() || a.timings.empty() || (a.output.empty() && a.intermediates.empty()))
        fail(kExitUsage, "--param, --bin, --input, --timings and --output are required (see --help)");
    if (a.repeats == 0 && a.min_time_ms <= 0 && a.target_ci_pct <= 0) fail(kExitUsage, "--repeats 0 needs --min-time-ms > 0");
    if (a.shape.size() > 5 || (a.shape.size() == 5 && a.shape[0] != 1))
        fail(kExitUsage, "--shape takes 1 to 4 dimensions, plus a leading batch of 1");
    return a;
}

// ncnn has no batch axis: a leading N=1 of an NCHW shape is dropped (C x H x W).
std::vector<int> ncnn_dims(const std::vector<int>& shape)
{
    std::vector<int> d = shape;
    if (d.size() == 4 && d[0] == 1) d.erase(d.begin());
    else if (d.size() == 5 && d[0] == 1) d.erase(d.begin());
    return d;
}

// A .npy file (version 1/2/3, little-endian float32, C order) or a raw float32 file. Returns the data offset and,
// for .npy, fills `shape` from the header.
long npy_header(FILE* f, std::vector<int>& shape, const std::string& path)
{
    unsigned char magic[8] = {0};
    if (std::fread(magic, 1, 8, f) != 8 || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    {
        std::fseek(f, 0, SEEK_SET);
        return 0;  // raw float32
    }
    unsigned long hlen = 0;
    long offset = 0;
    if (magic[6] == 1)
    {
        unsigned char b[2];
        if (std::fread(b, 1, 2, f) != 2) fail(kExitUsage, "truncated .npy header in " + path);
        hlen = b[0] | (b[1] << 8);
        offset = 10 + (long)hlen;
    }
    else
    {
        unsigned char b[4];
        if (std::fread(b, 1, 4, f) != 4) fail(kExitUsage, "truncated .npy header in " + path);
        hlen = b[0] | (b[1] << 8) | (b[2] << 16) | ((unsigned long)b[3] << 24);
        offset = 12 + (long)hlen;
    }
    std::string h(hlen, '\0');
    if (std::fread(&h[0], 1, hlen, f) != hlen) fail(kExitUsage, "truncated .npy header in " + path);
    if (h.find("'descr': '<f4'") == std::string::npos)
        fail(kExitUsage, path + " is not float32 (little endian): save it with np.float32");
    if (h.find("'fortran_order': False") == std::string::npos)
        fail(kExitUsage, path + " is in Fortran order: save np.ascontiguousarray(x)");
    size_t lp = h.find('(', h.find("'shape'"));
    size_t rp = h.find(')', lp);
    if (lp == std::string::npos || rp == std::string::npos) fail(kExitUsage, "no shape in the .npy header of " + path);
    shape.clear();
    std::string dims = h.substr(lp + 1, rp - lp - 1);
    size_t i = 0;
    while (i < dims.size())
    {
        while (i < dims.size() && (dims[i] == ' ' || dims[i] == ',')) i++;
        if (i >= dims.size()) break;
        shape.push_back(std::atoi(dims.c_str() + i));
        while (i < dims.size() && dims[i] != ',') i++;
    }
    return offset;
}

ncnn::Mat read_input(Args& a)
{
    FILE* f = std::fopen(a.input.c_str(), "rb");
    if (!f) fail(kExitUsage, "cannot open input file " + a.input);
    std::vector<int> npy_shape;
    long offset = npy_header(f, npy_shape, a.input);
    if (offset > 0)
    {
        if (!a.shape.empty() && a.shape != npy_shape) fail(kExitUsage, "--shape differs from the shape in " + a.input);
        a.shape = npy_shape;
    }
    if (a.shape.empty() || a.shape.size() > 5 || (a.shape.size() == 5 && a.shape[0] != 1))
        fail(kExitUsage, "give --shape (1 to 4 dimensions, plus a leading batch of 1) for the raw input " + a.input);
    std::vector<int> d = ncnn_dims(a.shape);
    if (a.shape.size() == 4 && a.shape[0] != 1)
        fail(kExitUsage, "batch > 1 is not supported by ncnn: give an input of shape 1 x C x H x W");
    ncnn::Mat m;
    if (d.size() == 1) m.create(d[0]);
    else if (d.size() == 2) m.create(d[1], d[0]);
    else if (d.size() == 3) m.create(d[2], d[1], d[0]);
    else m.create(d[3], d[2], d[1], d[0]);
    if (m.empty()) fail(kExitRuntime, "could not allocate the input tensor");

    size_t per_channel = (size_t)m.w * m.h * m.d;
    size_t expected = per_channel * m.c;
    std::fseek(f, 0, SEEK_END);
    long bytes = std::ftell(f) - offset;
    std::fseek(f, offset, SEEK_SET);
    if (bytes != (long)(expected * sizeof(float)))
    {
        std::fclose(f);
        fail(kExitUsage, "input file " + a.input + " has " + std::to_string(bytes) + " data bytes, the shape needs "
                             + std::to_string(expected * sizeof(float)) + " (float32)");
    }
    // ncnn aligns each channel to cstep elements: read channel by channel.
    for (int q = 0; q < m.c; q++)
    {
        if (std::fread(m.channel(q), sizeof(float), per_channel, f) != per_channel)
        {
            std::fclose(f);
            fail(kExitRuntime, "short read from " + a.input);
        }
    }
    std::fclose(f);
    return m;
}

bool ends_with(const std::string& s, const std::string& suffix)
{
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Writes the output as .npy when the path ends in .npy (what the Python harness writes), else raw float32.
std::vector<int> write_output(const ncnn::Mat& out, const std::string& path, bool batch_axis)
{
    std::vector<int> shape;
    if (batch_axis) shape.push_back(1);
    if (out.dims == 1) shape.insert(shape.end(), {out.w});
    else if (out.dims == 2) shape.insert(shape.end(), {out.h, out.w});
    else if (out.dims == 3) shape.insert(shape.end(), {out.c, out.h, out.w});
    else shape.insert(shape.end(), {out.c, out.d, out.h, out.w});
    if (out.elemsize != 4 || out.elempack != 1)
        fail(kExitRuntime, "the output is not unpacked float32 (elemsize " + std::to_string(out.elemsize) + ")");

    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) fail(kExitUsage, "cannot write output file " + path);
    if (ends_with(path, ".npy"))
    {
        std::string dims;
        for (size_t i = 0; i < shape.size(); i++) dims += (i ? ", " : "") + std::to_string(shape[i]);
        if (shape.size() == 1) dims += ",";  // a 1-tuple in Python syntax
        std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
        size_t total = 10 + h.size() + 1;
        h.append((64 - total % 64) % 64, ' ');
        h += '\n';
        unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(h.size() & 0xff),
                                 (unsigned char)(h.size() >> 8)};
        std::fwrite(pre, 1, 10, f);
        std::fwrite(h.data(), 1, h.size(), f);
    }
    size_t per_channel = (size_t)out.w * out.h * out.d;
    for (int q = 0; q < out.c; q++)
    {
        if (std::fwrite(out.channel(q), sizeof(float), per_channel, f) != per_channel)
        {
            std::fclose(f);
            fail(kExitRuntime, "short write to " + path);
        }
    }
    std::fclose(f);
    return shape;
}

std::string json_str(const std::string& s)
{
    std::string o = "\"";
    for (char c : s)
    {
        if (c == '"' || c == '\\') { o += '\\'; o += c; }
        else if ((unsigned char)c < 0x20)
        {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", (unsigned char)c);
            o += buf;
        }
        else o += c;
    }
    return o + "\"";
}

std::string json_num(double v)
{
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.6f", v);
    return buf;
}

std::string json_list(const std::vector<double>& v)
{
    std::string o = "[";
    for (size_t i = 0; i < v.size(); i++) o += (i ? ", " : "") + json_num(v[i]);
    return o + "]";
}

std::string json_ints(const std::vector<int>& v)
{
    std::string o = "[";
    for (size_t i = 0; i < v.size(); i++) o += (i ? ", " : "") + std::to_string(v[i]);
    return o + "]";
}

const char* json_bool(bool b) { return b ? "true" : "false"; }

std::vector<int> allowed_cpus()
{
    std::vector<int> cpus;
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        for (int i = 0; i < CPU_SETSIZE; i++)
            if (CPU_ISSET(i, &set)) cpus.push_back(i);
#endif
    return cpus;
}

double median(std::vector<double> v)
{
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef std::chrono::steady_clock Clock;

double ms_between(Clock::time_point a, Clock::time_point b)
{
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// -- per-cell figures beside the timings: the same definitions as device_scripts/harness.py and
//    mobileseg.bench.memory / mobileseg.bench.sampling (docs/measurement.md) --------------------------------------
long proc_kb(const char* path, const char* field)
{
    FILE* f = std::fopen(path, "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t n = std::strlen(field);
    while (std::fgets(line, sizeof line, f))
        if (!std::strncmp(line, field, n) && line[n] == ':') { v = std::atol(line + n + 1); break; }
    std::fclose(f);
    return v;
}

bool reset_peak()
{
    FILE* f = std::fopen("/proc/self/clear_refs", "w");
    if (!f) return false;
    bool ok = std::fputs("5", f) >= 0;
    return std::fclose(f) == 0 && ok;
}

std::string json_mb(long kb) { return kb < 0 ? "null" : json_num(kb / 1024.0); }

// Relative half-width max(median - low, high - median) / median of the order-statistics 95% interval of the
// median (mobileseg.results.stats.median_ci); < 0 below 6 samples.
double median_ci_halfwidth(const std::vector<double>& sorted_ms)
{
    int n = (int)sorted_ms.size();
    if (n < 6) return -1;
    auto coverage = [n](int j) {  // P(j <= B <= n - j), B ~ Binomial(n, 1/2), 1-based j
        double top = -1e300, sum = 0;
        std::vector<double> t(j);
        for (int i = 0; i < j; i++)
        {
            t[i] = std::lgamma(n + 1.0) - std::lgamma(i + 1.0) - std::lgamma(n - i + 1.0) - n * std::log(2.0);
            top = std::max(top, t[i]);
        }
        for (int i = 0; i < j; i++) sum += std::exp(t[i] - top);
        return 1.0 - 2.0 * std::exp(top) * sum;
    };
    int lo = 1, hi = (n + 1) / 2;
    while (lo < hi)
    {
        int mid = (lo + hi + 1) / 2;
        if (coverage(mid) >= 0.95) lo = mid;
        else hi = mid - 1;
    }
    double m = n % 2 ? sorted_ms[n / 2] : 0.5 * (sorted_ms[n / 2 - 1] + sorted_ms[n / 2]);
    if (m == 0) return -1;
    return std::max(m - sorted_ms[lo - 1], sorted_ms[n - lo] - m) / m;
}

// -- per-layer mode (mobileseg parity --per-layer --device adb:...): every layer's output blob, one file ----------
// File: "MSGI1\n", then per blob: u32 name length, name ("layer:blob"), u32 type length, layer type, u32 dims,
// dims x u32 (c, h, w order, as ncnn's Python binding gives them), float32 data. Split copies are skipped; one
// extractor without light mode, so every blob stays computed. Read by mobileseg.numerics.device.read_native.
int dump_intermediates(ncnn::Net& net, const ncnn::Mat& in, const Args& a)
{
    FILE* pf = std::fopen(a.param.c_str(), "rb");
    if (!pf) fail(kExitUsage, "cannot read the ncnn param file " + a.param);
    std::vector<std::string> lines;
    std::string line;
    for (int ch; (ch = std::fgetc(pf)) != EOF;)
    {
        if (ch == '\n') { lines.push_back(line); line.clear(); }
        else line += (char)ch;
    }
    if (!line.empty()) lines.push_back(line);
    std::fclose(pf);
    FILE* f = std::fopen(a.intermediates.c_str(), "wb");
    if (!f) fail(kExitUsage, "cannot write " + a.intermediates);
    auto put_u32 = [&](unsigned int v) { std::fwrite(&v, 4, 1, f); };
    auto put_str = [&](const std::string& s) { put_u32((unsigned int)s.size()); std::fwrite(s.data(), 1, s.size(), f); };
    std::fwrite("MSGI1\n", 1, 6, f);
    ncnn::Extractor ex = net.create_extractor();
    ex.set_light_mode(false);
    if (ex.input(a.input_name.c_str(), in) != 0) fail(kExitUsage, "the model has no input blob named " + a.input_name);
    int count = 0;
    for (size_t li = 2; li < lines.size(); li++)
    {
        std::vector<std::string> parts;
        size_t pos = 0;
        const std::string& l = lines[li];
        while (pos < l.size())
        {
            while (pos < l.size() && (l[pos] == ' ' || l[pos] == '\t' || l[pos] == '\r')) pos++;
            size_t end = pos;
            while (end < l.size() && l[end] != ' ' && l[end] != '\t' && l[end] != '\r') end++;
            if (end > pos) parts.push_back(l.substr(pos, end - pos));
            pos = end;
        }
        int n_in = 0, n_out = 0;
        if (parts.size() < 4 || !parse_int(parts[2].c_str(), n_in) || !parse_int(parts[3].c_str(), n_out)) continue;
        if (parts[0] == "Input" || parts[0] == "Split") continue;
        for (int k = 0; k < n_out && 4 + n_in + k < (int)parts.size(); k++)
        {
            const std::string& blob = parts[4 + n_in + k];
            ncnn::Mat m;
            if (ex.extract(blob.c_str(), m) != 0 || m.empty()) continue;
            std::vector<unsigned int> dims;
            if (m.dims == 1) dims = {(unsigned)m.w};
            else if (m.dims == 2) dims = {(unsigned)m.h, (unsigned)m.w};
            else if (m.dims == 3) dims = {(unsigned)m.c, (unsigned)m.h, (unsigned)m.w};
            else dims = {(unsigned)m.c, (unsigned)m.d, (unsigned)m.h, (unsigned)m.w};
            put_str(parts[1] + ":" + blob);
            put_str(parts[0]);
            put_u32((unsigned int)dims.size());
            for (unsigned int d : dims) put_u32(d);
            size_t plane = (size_t)m.w * m.h * m.d;
            for (int q = 0; q < m.c; q++) std::fwrite(m.channel(q).data, sizeof(float), plane, f);  // cstep padding dropped
            count++;
        }
    }
    std::fclose(f);
    std::string j = "{\"ok\": true, \"harness\": \"native-ncnn\", \"runtime\": \"ncnn\", \"mode\": \"intermediates\", "
                    "\"tensors\": " + std::to_string(count) + ", \"runtime_version\": " + json_str(MOBILESEG_NCNN_VERSION) + "}\n";
    FILE* t = std::fopen(a.timings.c_str(), "wb");
    if (!t || std::fwrite(j.data(), 1, j.size(), t) != j.size()) fail(kExitUsage, "cannot write " + a.timings);
    std::fclose(t);
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    static_assert(Clock::is_steady, "the timing clock must be monotonic");
    Args a = parse_args(argc, argv);

    ncnn::Net net;
    // Options must be set before loading: layers pick their kernels from them at creation.
    ncnn::Option& opt = net.opt;
    opt.num_threads = a.threads;
    opt.use_vulkan_compute = false;
    std::string vulkan_json;  // the device fields of mobileseg.runtimes.ncnn_vulkan, for the settings
    if (a.vulkan)
    {
#if NCNN_VULKAN
        const char* hint = "install a GPU driver, or Mesa's software Vulkan driver lavapipe";
        if (ncnn::get_gpu_count() < 1) fail(kExitUsage, std::string("ncnn finds no Vulkan device: ") + hint);
        int index = a.vulkan_device >= 0 ? a.vulkan_device : ncnn::get_default_gpu_index();
        if (index >= ncnn::get_gpu_count()) fail(kExitUsage, "--vulkan-device " + std::to_string(index) + " is not a Vulkan device index");
        const ncnn::GpuInfo& info = ncnn::get_gpu_info(index);
        std::string name = info.device_name();
        if (ncnn::get_gpu_device(index) == 0)
            fail(kExitUsage, "the Vulkan driver of '" + name + "' fails to create the device: " + hint);
        std::string lower = name;
        for (size_t i = 0; i < lower.size(); i++) lower[i] = (char)std::tolower((unsigned char)lower[i]);
        const char* soft = lower.find("llvmpipe") != std::string::npos ? "lavapipe (Mesa)"
                           : lower.find("swiftshader") != std::string::npos ? "SwiftShader" : 0;
        const char* kinds[] = {"discrete", "integrated", "virtual", "cpu"};
        int kind = info.type();
        unsigned int api = info.api_version();
        char vendor[16];
        std::snprintf(vendor, sizeof vendor, "0x%x", info.vendor_id());
        std::string esc;  // device names are plain ASCII; drop quotes and backslashes rather than escape them
        for (size_t i = 0; i < name.size(); i++) if (name[i] != '"' && name[i] != '\\') esc += name[i];
        vulkan_json = ", \"vulkan_device\": \"" + esc + "\", \"vulkan_device_index\": " + std::to_string(index)
                      + ", \"vulkan_device_type\": \"" + std::string(kind >= 0 && kind <= 3 ? kinds[kind] : "other")
                      + "\", \"vulkan_vendor_id\": " + std::to_string(info.vendor_id())
                      + ", \"vulkan_driver\": \"" + std::string(soft ? soft : vendor)
                      + "\", \"vulkan_driver_version\": " + std::to_string(info.driver_version())
                      + ", \"vulkan_api_version\": \"" + std::to_string((api >> 22) & 0x7F) + "."
                      + std::to_string((api >> 12) & 0x3FF) + "." + std::to_string(api & 0xFFF)
                      + "\", \"vulkan_software\": " + json_bool(kind == 3 || soft);
        opt.use_vulkan_compute = true;
        net.set_vulkan_device(index);
#else
        fail(kExitUsage, "this harness was built without Vulkan: build the Vulkan variant with "
                         "`mobileseg harness build --vulkan --ndk PATH`");
#endif
    }
    opt.lightmode = a.light_mode;
    opt.use_packing_layout = a.packing;
    opt.use_fp16_packed = a.fp16;
    opt.use_fp16_storage = a.fp16;
    opt.use_fp16_arithmetic = a.fp16;
    opt.use_bf16_storage = a.bf16;
    opt.use_bf16_packed = a.bf16;
    opt.use_int8_inference = a.int8;
    opt.use_int8_packed = a.int8;
    opt.use_int8_storage = a.int8;
    opt.use_int8_arithmetic = a.int8;
    opt.use_winograd_convolution = a.winograd;
    opt.use_sgemm_convolution = a.sgemm;
    opt.flush_denormals = (unsigned char)a.flush_denormals;

    bool resettable = reset_peak();
    long rss0 = proc_kb("/proc/self/status", "VmRSS");
    Clock::time_point load0 = Clock::now();
    if (net.load_param(a.param.c_str()) != 0) fail(kExitUsage, "cannot load the ncnn param file " + a.param);
    if (net.load_model(a.bin.c_str()) != 0) fail(kExitUsage, "cannot load the ncnn weights file " + a.bin);
    double load_ms = ms_between(load0, Clock::now());
    long rss_loaded = proc_kb("/proc/self/status", "VmRSS");

    ncnn::Mat in = read_input(a);
    if (!a.intermediates.empty()) return dump_intermediates(net, in, a);
    ncnn::Mat out;

    // One extractor per iteration: an extractor caches blobs, so a reused one would return without computing.
    auto run_once = [&](double* ms) {
        ncnn::Extractor ex = net.create_extractor();
        if (ex.input(a.input_name.c_str(), in) != 0) fail(kExitUsage, "the model has no input blob named " + a.input_name);
        Clock::time_point t0 = Clock::now();
        int rc = ex.extract(a.output_name.c_str(), out);
        Clock::time_point t1 = Clock::now();
        if (rc != 0) fail(kExitRuntime, "extracting blob " + a.output_name + " failed (is that the output name?)");
        if (ms) *ms = ms_between(t0, t1);
    };

    std::vector<double> warmup_ms, samples_ms, ordered;
    double first_run_ms = 0;  // the first call after the load: timed alone, one of the warm-up runs
    run_once(&first_run_ms);
    if (a.warmup > 0) warmup_ms.push_back(first_run_ms);
    for (int i = 1; i < a.warmup; i++)
    {
        double ms = 0;
        run_once(&ms);
        warmup_ms.push_back(ms);
    }
    // Same stopping rule as the Python harness: a fixed count when --repeats > 0, otherwise until --min-time-ms of
    // timed calls (and at least 3 of them); never more than --max-repeats.
    double total = 0, halfwidth = -1;
    int next_check = std::max(6, a.min_repeats);
    bool reached = false;
    Clock::time_point sampling0 = Clock::now();
    for (;;)
    {
        double ms = 0;
        run_once(&ms);
        samples_ms.push_back(ms);
        total += ms;
        int n = (int)samples_ms.size();
        if (a.target_ci_pct > 0)  // --target-ci: mobileseg.bench.sampling's rule
        {
            ordered.insert(std::upper_bound(ordered.begin(), ordered.end(), ms), ms);
            bool stop = ms_between(sampling0, Clock::now()) >= a.max_time_ms || n >= a.max_repeats;
            if (n >= next_check || stop)
            {
                halfwidth = median_ci_halfwidth(ordered);
                next_check = std::max(n + 1, (int)(n * 1.05));
                reached = halfwidth >= 0 && halfwidth * 100 <= a.target_ci_pct;
                if (reached || stop) break;
            }
            continue;
        }
        if (a.repeats > 0 && n >= a.repeats) break;
        if (a.repeats == 0 && total >= a.min_time_ms && n >= 3) break;
        if (n >= a.max_repeats) break;
    }

    // The cost of reading the clock twice: what an empty timed region measures.
    std::vector<double> empty;
    for (int i = 0; i < 101; i++)
    {
        Clock::time_point t0 = Clock::now();
        Clock::time_point t1 = Clock::now();
        empty.push_back(ms_between(t0, t1));
    }

    long peak = proc_kb("/proc/self/status", "VmHWM"), pss = proc_kb("/proc/self/smaps_rollup", "Pss");
    double sampling_s = ms_between(sampling0, Clock::now()) / 1000.0;
    std::vector<int> out_shape = write_output(out, a.output, a.shape.size() == 4 || a.shape.size() == 5);

    std::string j = "{\n";
    j += "  \"schema_version\": 1,\n";
    j += "  \"ok\": true,\n";
    j += "  \"harness\": \"native-ncnn\",\n";
    j += "  \"runtime\": \"ncnn\",\n";
    j += "  \"runtime_version\": " + json_str(MOBILESEG_NCNN_VERSION) + ",\n";
    j += "  \"clock\": \"std::chrono::steady_clock\",\n";
    j += "  \"threads\": " + std::to_string(a.threads) + ",\n";
    j += "  \"warmup\": " + std::to_string(a.warmup) + ",\n";
    j += "  \"repeats\": " + std::to_string(samples_ms.size()) + ",\n";
    j += "  \"samples_ms\": " + json_list(samples_ms) + ",\n";
    j += "  \"warmup_ms\": " + json_list(warmup_ms) + ",\n";
    j += "  \"overhead_ms\": " + json_num(median(empty)) + ",\n";
    j += "  \"load_ms\": " + json_num(load_ms) + ",\n";
    j += "  \"first_run_ms\": " + json_num(first_run_ms) + ",\n";
    j += "  \"memory\": {\"definition\": \"peak_rss_growth_mb = peak RSS over load + runs (VmHWM, reset before the load) - "
         "RSS before the load; load_rss_growth_mb = RSS after load - RSS before; pss_mb = Pss of /proc/self/smaps_rollup "
         "after the runs; MB = 2^20 bytes\", \"source\": "
         + std::string(resettable ? "\"VmHWM reset through /proc/self/clear_refs\""
                                  : "\"VmHWM of this fresh process (clear_refs refused)\"")
         + ", \"rss_before_mb\": " + json_mb(rss0) + ", \"peak_rss_mb\": " + json_mb(peak)
         + ", \"peak_rss_growth_mb\": " + json_mb(rss0 >= 0 && peak >= 0 ? std::max(0L, peak - rss0) : -1)
         + ", \"load_rss_growth_mb\": " + (rss0 >= 0 && rss_loaded >= 0 ? json_num((rss_loaded - rss0) / 1024.0) : "null")
         + ", \"pss_mb\": " + json_mb(pss) + "},\n";
    if (a.target_ci_pct > 0)
        j += "  \"sampling\": {\"reached\": " + std::string(json_bool(reached)) + ", \"halfwidth_pct\": "
             + (halfwidth >= 0 ? json_num(halfwidth * 100) : "null") + ", \"elapsed_s\": " + json_num(sampling_s) + "},\n";
    j += "  \"affinity\": " + json_ints(allowed_cpus()) + ",\n";
    j += "  \"settings\": {\"threads\": " + std::to_string(opt.num_threads) + ", \"vulkan\": "
         + json_bool(opt.use_vulkan_compute) + vulkan_json
         + ", \"use_fp16_packed\": " + json_bool(opt.use_fp16_packed)
         + ", \"use_fp16_storage\": " + json_bool(opt.use_fp16_storage)
         + ", \"use_fp16_arithmetic\": " + json_bool(opt.use_fp16_arithmetic)
         + ", \"use_bf16_storage\": " + json_bool(opt.use_bf16_storage)
         + ", \"use_bf16_packed\": " + json_bool(opt.use_bf16_packed)
         + ", \"use_int8_inference\": " + json_bool(opt.use_int8_inference)
         + ", \"use_packing_layout\": " + json_bool(opt.use_packing_layout)
         + ", \"use_winograd_convolution\": " + json_bool(opt.use_winograd_convolution)
         + ", \"use_sgemm_convolution\": " + json_bool(opt.use_sgemm_convolution)
         + ", \"light_mode\": " + json_bool(opt.lightmode)
         + ", \"flush_denormals\": " + std::to_string((int)opt.flush_denormals)
         + ", \"openmp_blocktime\": " + std::to_string(opt.openmp_blocktime)
         + ", \"cpu_powersave\": " + std::to_string(ncnn::get_cpu_powersave()) + "},\n";
    j += "  \"cpu\": {\"count\": " + std::to_string(ncnn::get_cpu_count())
         + ", \"big\": " + std::to_string(ncnn::get_big_cpu_count())
         + ", \"little\": " + std::to_string(ncnn::get_little_cpu_count())
#if defined(__aarch64__)
         + ", \"arch\": \"arm64\""
         + ", \"asimdhp\": " + json_bool(ncnn::cpu_support_arm_asimdhp())
         + ", \"asimddp\": " + json_bool(ncnn::cpu_support_arm_asimddp())
         + ", \"bf16\": " + json_bool(ncnn::cpu_support_arm_bf16())
         + ", \"i8mm\": " + json_bool(ncnn::cpu_support_arm_i8mm())
         + ", \"sve\": " + json_bool(ncnn::cpu_support_arm_sve())
#elif defined(__x86_64__)
         + ", \"arch\": \"x86_64\""
         + ", \"avx2\": " + json_bool(ncnn::cpu_support_x86_avx2())
#endif
         + "},\n";
    j += "  \"input\": {\"file\": " + json_str(a.input) + ", \"name\": " + json_str(a.input_name)
         + ", \"shape\": " + json_ints(a.shape) + ", \"dtype\": \"float32\"},\n";
    j += "  \"output_shape\": " + json_ints(out_shape) + ",\n";
    j += "  \"machine\": \"" MOBILESEG_MACHINE "\",\n";
    j += "  \"output\": {\"file\": " + json_str(a.output) + ", \"name\": " + json_str(a.output_name)
         + ", \"shape\": " + json_ints(out_shape) + ", \"dtype\": \"float32\"},\n";
    j += "  \"model\": {\"param\": " + json_str(a.param) + ", \"bin\": " + json_str(a.bin) + "}\n";
    j += "}\n";

    FILE* f = std::fopen(a.timings.c_str(), "wb");
    if (!f || std::fwrite(j.data(), 1, j.size(), f) != j.size()) fail(kExitUsage, "cannot write timings file " + a.timings);
    std::fclose(f);
    return 0;
}
