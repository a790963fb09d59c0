/*
 * A fake libnvidia-ml.so for Convoy's telemetry tests (no GPU on CI).
 *
 * nvml-wrapper-sys 0.10 resolves every NVML symbol at load time with
 * libloading but keeps each as a Result: a missing symbol only fails when it
 * is called (NvmlError::FailedToLoadSymbol). So this library exports just the
 * functions Convoy's sampler calls, plus nvmlShutdown (called from Nvml's
 * Drop without a check) and nvmlEventSetFree (EventSet's Drop).
 *
 * Two GPUs with fixed values. Knobs: environment variables read at
 * nvmlInit, each defaulting to a compile-time macro (tests build the library
 * with -D..., since a Rust test cannot set its own environment safely):
 *   FAKE_NVML_PROCS  "pid:bytes,pid:bytes"  compute processes on GPU 0
 *   FAKE_NVML_XID    "gpu:xid"              one XID event delivered once
 *   FAKE_NVML_GPUS   "2"                    device count (0..2)
 * GPU 1 fails the fan speed (NVML_ERROR_NOT_SUPPORTED).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FAKE_NVML_DEFAULT_PROCS
#define FAKE_NVML_DEFAULT_PROCS ""
#endif
#ifndef FAKE_NVML_DEFAULT_XID
#define FAKE_NVML_DEFAULT_XID ""
#endif
#ifndef FAKE_NVML_DEFAULT_GPUS
#define FAKE_NVML_DEFAULT_GPUS "2"
#endif

typedef int nvmlReturn_t;
#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_TIMEOUT 10

#define EVENT_XID 8ULL
#define EVENT_DBE 2ULL

typedef struct {
    unsigned int index;
    const char *uuid;
    const char *name;
    unsigned int util_gpu, util_mem;
    unsigned long long mem_total, mem_used;
    unsigned int temp;
    unsigned int power_mw, power_limit_mw;
    unsigned int sm_clock, mem_clock;
    int fan; /* -1: not supported */
    unsigned int pcie_gen, pcie_width;
    unsigned long long ecc_corrected, ecc_uncorrected;
    unsigned int retired_sbe, retired_dbe;
    unsigned long long throttle;
} fake_gpu;

static fake_gpu gpus[2] = {
    {0, "GPU-00000000-1111-2222-3333-444444444444", "NVIDIA Fake A100", 37, 21,
     42949672960ULL, 10737418240ULL, 55, 123456, 400000, 1410, 1215, 40, 4, 16,
     3, 0, 1, 0, 0x4ULL},
    {1, "GPU-55555555-6666-7777-8888-999999999999", "NVIDIA Fake L4", 90, 64,
     24159191040ULL, 23622320128ULL, 81, 70500, 72000, 2040, 6251, -1, 3, 8,
     0, 2, 0, 1, 0ULL},
};

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t;

typedef struct {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

typedef fake_gpu *nvmlDevice_t;

typedef struct {
    nvmlDevice_t device;
    unsigned long long eventType;
    unsigned long long eventData;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlEventData_t;

typedef struct {
    unsigned long long registered[2];
} fake_event_set;
typedef fake_event_set *nvmlEventSet_t;

#define MAX_PROCS 16
static nvmlProcessInfo_t procs[MAX_PROCS];
static unsigned int nprocs;
static int xid_gpu = -1;
static unsigned long long xid_value;
static int xid_delivered;
static unsigned int gpu_count = 2;
static int initialised;

static const char *knob(const char *env, const char *dflt) {
    const char *v = getenv(env);
    return v ? v : dflt;
}

static void configure(void) {
    const char *p = knob("FAKE_NVML_PROCS", FAKE_NVML_DEFAULT_PROCS);
    nprocs = 0;
    while (p && *p && nprocs < MAX_PROCS) {
        unsigned int pid;
        unsigned long long bytes;
        if (sscanf(p, "%u:%llu", &pid, &bytes) != 2) break;
        procs[nprocs].pid = pid;
        procs[nprocs].usedGpuMemory = bytes;
        procs[nprocs].gpuInstanceId = 0xFFFFFFFFu;
        procs[nprocs].computeInstanceId = 0xFFFFFFFFu;
        nprocs++;
        p = strchr(p, ',');
        if (p) p++;
    }
    const char *x = knob("FAKE_NVML_XID", FAKE_NVML_DEFAULT_XID);
    unsigned int g;
    unsigned long long v;
    if (x && sscanf(x, "%u:%llu", &g, &v) == 2 && g < 2) {
        xid_gpu = (int)g;
        xid_value = v;
    }
    xid_delivered = 0;
    int n = atoi(knob("FAKE_NVML_GPUS", FAKE_NVML_DEFAULT_GPUS));
    gpu_count = (n < 0 || n > 2) ? 2u : (unsigned int)n;
}

static int valid(nvmlDevice_t d) { return initialised && (d == &gpus[0] || d == &gpus[1]); }

static nvmlReturn_t copy_str(const char *s, char *buf, unsigned int len) {
    if (!buf) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(s) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(buf, s);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) { configure(); initialised = 1; return NVML_SUCCESS; }
nvmlReturn_t nvmlInitWithFlags(unsigned int flags) { (void)flags; return nvmlInit_v2(); }
nvmlReturn_t nvmlShutdown(void) { initialised = 0; return NVML_SUCCESS; }
const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    default: return "Fake NVML error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *v, unsigned int len) { return copy_str("550.54.15", v, len); }
nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) { *v = 12040; return NVML_SUCCESS; }
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) { *v = 12040; return NVML_SUCCESS; }

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *n) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    *n = gpu_count;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (i >= gpu_count) return NVML_ERROR_INVALID_ARGUMENT;
    *d = &gpus[i];
    return NVML_SUCCESS;
}

#define DEV_CHECK(d) do { if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT; } while (0)

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t d, unsigned int *i) { DEV_CHECK(d); *i = d->index; return NVML_SUCCESS; }
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *b, unsigned int len) { DEV_CHECK(d); return copy_str(d->uuid, b, len); }
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *b, unsigned int len) { DEV_CHECK(d); return copy_str(d->name, b, len); }
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    DEV_CHECK(d); u->gpu = d->util_gpu; u->memory = d->util_mem; return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
    DEV_CHECK(d);
    m->total = d->mem_total; m->used = d->mem_used; m->reserved = 0; m->free = d->mem_total - d->mem_used;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, unsigned int sensor, unsigned int *t) {
    DEV_CHECK(d); if (sensor != 0) return NVML_ERROR_NOT_SUPPORTED; *t = d->temp; return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *p) { DEV_CHECK(d); *p = d->power_mw; return NVML_SUCCESS; }
nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t d, unsigned int *p) { DEV_CHECK(d); *p = d->power_limit_mw; return NVML_SUCCESS; }
nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, unsigned int type, unsigned int *c) {
    DEV_CHECK(d);
    if (type == 1) *c = d->sm_clock;
    else if (type == 2) *c = d->mem_clock;
    else return NVML_ERROR_NOT_SUPPORTED;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetFanSpeed_v2(nvmlDevice_t d, unsigned int fan, unsigned int *s) {
    DEV_CHECK(d);
    if (d->fan < 0 || fan != 0) return NVML_ERROR_NOT_SUPPORTED;
    *s = (unsigned int)d->fan;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetFanSpeed(nvmlDevice_t d, unsigned int *s) { return nvmlDeviceGetFanSpeed_v2(d, 0, s); }
nvmlReturn_t nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t d, unsigned int *g) { DEV_CHECK(d); *g = d->pcie_gen; return NVML_SUCCESS; }
nvmlReturn_t nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t d, unsigned int *w) { DEV_CHECK(d); *w = d->pcie_width; return NVML_SUCCESS; }
nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, unsigned int type, unsigned int counter, unsigned long long *n) {
    DEV_CHECK(d); (void)counter;
    if (type == 0) *n = d->ecc_corrected;
    else if (type == 1) *n = d->ecc_uncorrected;
    else return NVML_ERROR_INVALID_ARGUMENT;
    return NVML_SUCCESS;
}
static unsigned int retired(nvmlDevice_t d, unsigned int cause) { return cause == 0 ? d->retired_sbe : d->retired_dbe; }
nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t d, unsigned int cause, unsigned int *count, unsigned long long *addrs) {
    DEV_CHECK(d);
    unsigned int n = retired(d, cause);
    if (*count < n) { *count = n; return NVML_ERROR_INSUFFICIENT_SIZE; }
    for (unsigned int i = 0; i < n; i++) addrs[i] = 0x1000ULL * (i + 1);
    *count = n;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetRetiredPages_v2(nvmlDevice_t d, unsigned int cause, unsigned int *count,
                                          unsigned long long *addrs, unsigned long long *ts) {
    nvmlReturn_t r = nvmlDeviceGetRetiredPages(d, cause, count, addrs);
    if (r == NVML_SUCCESS) for (unsigned int i = 0; i < *count; i++) ts[i] = 1700000000ULL + i;
    return r;
}
nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t d, unsigned long long *r) {
    DEV_CHECK(d); *r = d->throttle; return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t d, unsigned long long *r) {
    return nvmlDeviceGetCurrentClocksThrottleReasons(d, r);
}
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count, nvmlProcessInfo_t *infos) {
    DEV_CHECK(d);
    unsigned int n = d->index == 0 ? nprocs : 0;
    if (infos == NULL || *count < n) {
        *count = n;
        return n == 0 ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (unsigned int i = 0; i < n; i++) infos[i] = procs[i];
    *count = n;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t d, unsigned long long *t) {
    DEV_CHECK(d); *t = EVENT_XID | EVENT_DBE; return NVML_SUCCESS;
}
nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *s) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    *s = calloc(1, sizeof(fake_event_set));
    return *s ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
}
nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types, nvmlEventSet_t s) {
    DEV_CHECK(d);
    if (!s) return NVML_ERROR_INVALID_ARGUMENT;
    s->registered[d->index] |= types;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t s, nvmlEventData_t *data, unsigned int timeout_ms) {
    if (!s || !data) return NVML_ERROR_INVALID_ARGUMENT;
    if (xid_gpu >= 0 && !xid_delivered && (s->registered[xid_gpu] & EVENT_XID)) {
        xid_delivered = 1;
        memset(data, 0, sizeof(*data));
        data->device = &gpus[xid_gpu];
        data->eventType = EVENT_XID;
        data->eventData = xid_value;
        return NVML_SUCCESS;
    }
    usleep((useconds_t)timeout_ms * 1000u);
    return NVML_ERROR_TIMEOUT;
}
nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t s) { free(s); return NVML_SUCCESS; }
