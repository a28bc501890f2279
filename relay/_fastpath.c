/* The relay's inner loops, compiled: a run of a frame's RTP packets written, protected and laid
 * out back to back in the send buffer, in one call (per viewer); a frame split into NAL units
 * and a NAL unit into fragmentation units (per stream).
 *
 * relay/engine.py and relay/packets.py do the same in Python when this module is not built (no
 * C compiler where the package was installed): see relay/fastpath.py. libsrtp is not linked here: the caller
 * passes the address of pylibsrtp's own srtp_protect and of the session's context, so the
 * packets are protected by exactly the library and keys aiortc negotiated.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

/* libsrtp 2: srtp_err_status_t srtp_protect(srtp_t ctx, void *rtp_hdr, int *len_ptr) */
typedef int (*srtp_protect_fn)(void *ctx, void *rtp_hdr, int *len_ptr);

#define SRTP_TRAILER_ROOM (16 + 128) /* the largest tag plus the largest MKI */
#define MAX_BATCH 64 /* the kernel's limit of segments per segmented send (UDP_MAX_SEGMENTS) */
#define MAX_SEGMENTED_BYTES 65507 /* the largest UDP payload over IPv4 */

/* An int from Python without running Python code (no __index__): nothing the call holds a
 * borrowed reference to can go while it runs. -1 with an exception set when not an int or
 * out of range (also when negative). */
static Py_ssize_t
nonnegative(PyObject *value, const char *what)
{
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int", what);
        return -1;
    }
    Py_ssize_t result = PyLong_AsSsize_t(value);
    if (result == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (result < 0) {
        PyErr_Format(PyExc_ValueError, "%s must not be negative", what);
        return -1;
    }
    return result;
}

/* The RTP header libsrtp will parse must be what it says it is: version 2, its CSRC list and
 * extension block within ``length`` bytes and nothing after them (libsrtp encrypts from the
 * end of the header it reads). */
static int
header_ok(const unsigned char *head, Py_ssize_t length)
{
    if (length < 12 || (head[0] & 0xC0) != 0x80) {
        return 0;
    }
    Py_ssize_t expected = 12 + 4 * (Py_ssize_t)(head[0] & 0x0F);
    if (head[0] & 0x10) {
        if (length < expected + 4) {
            return 0;
        }
        expected += 4 + 4 * (((Py_ssize_t)head[expected + 2] << 8) | head[expected + 3]);
    }
    return expected == length;
}

/* The addresses of srtp_protect and of a session's context, from Python ints; 0 with an
 * exception set when either is missing. */
static int
protect_arguments(PyObject *function, PyObject *context, srtp_protect_fn *protect_out,
                  void **context_out)
{
    if (!PyLong_Check(function) || !PyLong_Check(context)) {
        PyErr_SetString(PyExc_TypeError, "the libsrtp function and context must be addresses");
        return 0;
    }
    /* unsigned: a negative int is no address (PyLong_AsVoidPtr would take it). Any other
     * int is trusted: only the relay's own code (relay.srtp) makes these from cffi objects. */
    size_t protect_value = PyLong_AsSize_t(function);
    size_t context_value = protect_value == (size_t)-1 ? 0 : PyLong_AsSize_t(context);
    if (PyErr_Occurred()) {
        return 0;
    }
    void *protect = (void *)protect_value;
    void *ctx = (void *)context_value;
    if (protect == NULL || ctx == NULL) {
        PyErr_SetString(PyExc_ValueError, "no libsrtp function or context");
        return 0;
    }
    *protect_out = (srtp_protect_fn)protect;
    *context_out = ctx;
    return 1;
}

/* payloads[start:end] as one segmented send needs them: bytes, at most MAX_BATCH, all of the
 * first one's size but the last, which may be shorter. Checked before anything is protected,
 * so a refused batch uses up no sequence numbers. */
static int
batch_ok(PyObject *payloads, Py_ssize_t start, Py_ssize_t end)
{
    if (start >= end || end > PyTuple_GET_SIZE(payloads)) {
        PyErr_SetString(PyExc_IndexError, "a batch lies outside the frame's payloads");
        return 0;
    }
    if (end - start > MAX_BATCH) {
        PyErr_Format(PyExc_ValueError, "a batch has %zd packets, more than %d", end - start,
                     MAX_BATCH);
        return 0;
    }
    Py_ssize_t size = -1;
    for (Py_ssize_t index = start; index < end; index++) {
        PyObject *payload = PyTuple_GET_ITEM(payloads, index);
        if (!PyBytes_Check(payload)) {
            PyErr_SetString(PyExc_TypeError, "a payload is not bytes");
            return 0;
        }
        Py_ssize_t length = PyBytes_GET_SIZE(payload);
        if (size < 0) {
            size = length;
        } else if (length > size || (length != size && index != end - 1)) {
            PyErr_SetString(PyExc_ValueError,
                            "a batch's payloads differ in size (plan them with plan_batches)");
            return 0;
        }
    }
    return 1;
}

/* Writes and protects payloads[start:end] (checked by batch_ok) at the start of buffer;
 * returns the bytes written (and the first datagram's size in *segment), -1 with an exception
 * set. Every protected packet of the batch has the first one's size but the last, which is no
 * longer, or ConnectionError: the send that follows relies on it. */
static Py_ssize_t
write_batch(unsigned char *buffer, Py_ssize_t capacity, PyObject *payloads, Py_ssize_t start,
            Py_ssize_t end, Py_ssize_t last, const char *head, Py_ssize_t head_length,
            unsigned long seq, srtp_protect_fn protect, void *context, Py_ssize_t *segment_out)
{
    Py_ssize_t offset = 0;
    Py_ssize_t segment = 0;
    for (Py_ssize_t index = start; index < end; index++) {
        PyObject *payload = PyTuple_GET_ITEM(payloads, index);
        Py_ssize_t payload_length = PyBytes_GET_SIZE(payload);
        if (payload_length > INT32_MAX / 2 - head_length
            || payload_length + head_length + SRTP_TRAILER_ROOM > capacity - offset) {
            PyErr_SetString(PyExc_ValueError, "the batch does not fit the send buffer");
            return -1;
        }
        Py_ssize_t length = head_length + payload_length;
        unsigned char *packet = buffer + offset;
        memcpy(packet, head, (size_t)head_length);
        packet[1] = (unsigned char)((packet[1] & 0x7F) | (index == last ? 0x80 : 0));
        packet[2] = (unsigned char)((seq >> 8) & 0xFF);
        packet[3] = (unsigned char)(seq & 0xFF);
        memcpy(packet + head_length, PyBytes_AS_STRING(payload), (size_t)payload_length);
        int protected_length = (int)length;
        int status = protect(context, packet, &protected_length);
        if (status != 0) {
            PyErr_Format(PyExc_ConnectionError,
                         "SRTP protection failed (libsrtp status %d)", status);
            return -1;
        }
        /* libsrtp appends at most SRTP_TRAILER_ROOM bytes: anything else is not the function
         * this code was built for, and the bytes after the packet are not to be trusted */
        if (protected_length < length || protected_length > length + SRTP_TRAILER_ROOM) {
            PyErr_Format(PyExc_ConnectionError,
                         "SRTP protection returned %d bytes for a packet of %zd",
                         protected_length, length);
            return -1;
        }
        if (index == start) {
            segment = protected_length;
        } else if (protected_length > segment
                   || (protected_length != segment && index != end - 1)) {
            PyErr_SetString(PyExc_ConnectionError,
                            "SRTP protection changed its tag length within a batch");
            return -1;
        }
        offset += protected_length;
        seq = (seq + 1) & 0xFFFF;
    }
    *segment_out = segment;
    return offset;
}

/* protect_batch(buffer, payloads, start, end, last, header, seq, protect, context)
 *     -> (bytes written, size of the first datagram)
 *
 * For each payload in payloads[start:end]: the RTP header ``header`` (fixed header and
 * extension block, as the frame's packets share it) with sequence number seq, seq + 1, ...
 * and the marker bit on index ``last``, then the payload, protected in place by libsrtp; each
 * protected packet directly after the previous one from the start of ``buffer``.
 *
 * ``protect`` and ``context`` are the addresses of srtp_protect and of a session's srtp_t:
 * the caller keeps the session that owns the context alive for the call (relay.path.DirectRoute
 * holds it). The GIL is held throughout and no Python code runs, so nothing is freed meanwhile. */
static PyObject *
protect_batch(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "protect_batch takes 9 arguments");
        return NULL;
    }
    PyObject *payloads = args[1];
    PyObject *header = args[5];
    if (!PyTuple_Check(payloads) || !PyBytes_Check(header) || !PyLong_Check(args[6])) {
        PyErr_SetString(PyExc_TypeError,
                        "protect_batch: payloads must be a tuple, header bytes, seq an int");
        return NULL;
    }
    Py_ssize_t start = nonnegative(args[2], "protect_batch: start");
    Py_ssize_t end = start < 0 ? -1 : nonnegative(args[3], "protect_batch: end");
    Py_ssize_t last = end < 0 ? -1 : nonnegative(args[4], "protect_batch: last");
    if (last < 0) {
        return NULL;
    }
    unsigned long seq = PyLong_AsUnsignedLong(args[6]);
    if (seq == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    srtp_protect_fn protect;
    void *context;
    if (!protect_arguments(args[7], args[8], &protect, &context)) {
        return NULL;
    }
    const char *head = PyBytes_AS_STRING(header);
    Py_ssize_t head_length = PyBytes_GET_SIZE(header);
    if (!header_ok((const unsigned char *)head, head_length)) {
        PyErr_SetString(PyExc_ValueError, "protect_batch: the header is not an RTP header of "
                        "its own length (version 2, CSRCs and extension included)");
        return NULL;
    }
    if (!batch_ok(payloads, start, end)) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    Py_ssize_t segment = 0;
    Py_ssize_t offset = write_batch((unsigned char *)view.buf, view.len, payloads, start, end,
                                    last, head, head_length, seq, protect, context, &segment);
    PyBuffer_Release(&view);
    if (offset < 0) {
        return NULL;
    }
    return Py_BuildValue("(nn)", offset, segment);
}

static int
gso_unsupported(int error)
{
    return error == EIO || error == EINVAL || error == ENOPROTOOPT || error == EOPNOTSUPP;
}

/* Sends ``count`` datagrams of ``segment`` bytes (the last possibly shorter) laid out in
 * ``data``, one sendto each, never blocking; what the socket cannot take now is dropped and
 * counted. */
static void
send_each(int fd, const struct sockaddr *address, socklen_t address_length,
          const unsigned char *data, Py_ssize_t size, Py_ssize_t segment, Py_ssize_t count,
          Py_ssize_t *dropped, Py_ssize_t *calls)
{
    Py_ssize_t offset = 0;
    for (Py_ssize_t index = 0; index < count && offset < size; index++) {
        Py_ssize_t length = size - offset < segment ? size - offset : segment;
        ssize_t sent = sendto(fd, data + offset, (size_t)length, MSG_DONTWAIT, address,
                              address_length);
        *calls += 1;
        if (sent < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) { /* the socket buffer is full */
                *dropped += count - index;
                return;
            }
            *dropped += 1; /* ENOBUFS, an ICMP error reported late, ...: this datagram only */
        }
        offset += length;
    }
}

/* The packed sockaddr ``address`` copied into ``storage``, when it is a whole sockaddr_in or
 * sockaddr_in6 of its family; its length, or 0 with an exception set. */
static socklen_t
socket_address(PyObject *address, struct sockaddr_storage *storage)
{
    Py_ssize_t length = PyBytes_GET_SIZE(address);
    memset(storage, 0, sizeof(*storage));
    if (length >= (Py_ssize_t)sizeof(sa_family_t)
        && length <= (Py_ssize_t)sizeof(*storage)) {
        memcpy(storage, PyBytes_AS_STRING(address), (size_t)length);
        if ((storage->ss_family == AF_INET && length == (Py_ssize_t)sizeof(struct sockaddr_in))
            || (storage->ss_family == AF_INET6
                && length == (Py_ssize_t)sizeof(struct sockaddr_in6))) {
            return (socklen_t)length;
        }
    }
    PyErr_SetString(PyExc_ValueError, "send_frame: the address is not a packed sockaddr_in or "
                    "sockaddr_in6 (see DatagramWriter.packed_address)");
    return 0;
}

/* send_frame(fd, address, buffer, payloads, batches, last, header, seq, protect, context, gso)
 *     -> (datagrams dropped, system calls, errno of a refused segmentation offload or 0)
 *
 * A frame to one viewer: each (start, end) run of ``batches`` written and protected into
 * ``buffer`` as protect_batch does, then sent to ``address`` (a packed sockaddr) on socket
 * ``fd`` with one sendmsg using UDP segmentation offload (``gso``), or one sendto per datagram.
 * When the kernel refuses segmentation, the rest of the frame goes one datagram per call and
 * the errno is returned, so the caller stops asking for it. Every argument is checked before
 * the first packet is protected; the sends never block (MSG_DONTWAIT). An exception after the
 * first batch (libsrtp refused a packet) leaves the earlier batches sent: the caller must not
 * reuse the frame's sequence numbers with these keys. */
static PyObject *
send_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 11) {
        PyErr_SetString(PyExc_TypeError, "send_frame takes 11 arguments");
        return NULL;
    }
    PyObject *address = args[1];
    PyObject *payloads = args[3];
    PyObject *batches = args[4];
    PyObject *header = args[6];
    if (!PyBytes_Check(address) || !PyTuple_Check(payloads) || !PyTuple_Check(batches)
        || !PyBytes_Check(header) || !PyLong_Check(args[0]) || !PyLong_Check(args[7])
        || !PyBool_Check(args[10])) {
        PyErr_SetString(PyExc_TypeError, "send_frame: fd and seq must be ints, address and "
                        "header bytes, payloads and batches tuples, gso a bool");
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t last = nonnegative(args[5], "send_frame: last");
    if (last < 0) {
        return NULL;
    }
    unsigned long seq = PyLong_AsUnsignedLong(args[7]);
    if (seq == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    int gso = args[10] == Py_True;
    srtp_protect_fn protect;
    void *context;
    if (!protect_arguments(args[8], args[9], &protect, &context)) {
        return NULL;
    }
    if (fd < 0 || fd > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "send_frame: no socket (closed?)");
        return NULL;
    }
    const char *head = PyBytes_AS_STRING(header);
    Py_ssize_t head_length = PyBytes_GET_SIZE(header);
    if (!header_ok((const unsigned char *)head, head_length)) {
        PyErr_SetString(PyExc_ValueError, "send_frame: the header is not an RTP header of its "
                        "own length (version 2, CSRCs and extension included)");
        return NULL;
    }
    struct sockaddr_storage storage;
    socklen_t to_length = socket_address(address, &storage);
    if (to_length == 0) {
        return NULL;
    }
    const struct sockaddr *to = (const struct sockaddr *)&storage;
    /* every batch checked before the first packet is protected or sent */
    Py_ssize_t batch_count = PyTuple_GET_SIZE(batches);
    for (Py_ssize_t b = 0; b < batch_count; b++) {
        PyObject *batch = PyTuple_GET_ITEM(batches, b);
        if (!PyTuple_Check(batch) || PyTuple_GET_SIZE(batch) != 2) {
            PyErr_SetString(PyExc_TypeError, "send_frame: a batch is not a (start, end) pair");
            return NULL;
        }
        Py_ssize_t start = nonnegative(PyTuple_GET_ITEM(batch, 0), "send_frame: a batch start");
        Py_ssize_t end = start < 0 ? -1
                         : nonnegative(PyTuple_GET_ITEM(batch, 1), "send_frame: a batch end");
        if (end < 0 || !batch_ok(payloads, start, end)) {
            return NULL;
        }
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[2], &view, PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    unsigned char *buffer = (unsigned char *)view.buf;
    Py_ssize_t dropped = 0;
    Py_ssize_t calls = 0;
    int refused = 0;
    for (Py_ssize_t b = 0; b < batch_count; b++) {
        PyObject *batch = PyTuple_GET_ITEM(batches, b);
        Py_ssize_t start = PyLong_AsSsize_t(PyTuple_GET_ITEM(batch, 0)); /* checked above */
        Py_ssize_t end = PyLong_AsSsize_t(PyTuple_GET_ITEM(batch, 1));
        Py_ssize_t segment = 0;
        Py_ssize_t size = write_batch(buffer, view.len, payloads, start, end, last, head,
                                      head_length, seq, protect, context, &segment);
        if (size < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
        seq = (seq + (unsigned long)(end - start)) & 0xFFFF;
        Py_ssize_t count = end - start;
        /* a run the kernel would refuse whole (EMSGSIZE, not a refusal of segmentation) goes
         * one datagram per call */
        if (count > 1 && gso && size <= MAX_SEGMENTED_BYTES) {
            struct iovec vector = {buffer, (size_t)size};
            union {
                char data[CMSG_SPACE(sizeof(uint16_t))];
                struct cmsghdr align;
            } control;
            memset(&control, 0, sizeof(control));
            struct msghdr message = {0};
            message.msg_name = (void *)to;
            message.msg_namelen = to_length;
            message.msg_iov = &vector;
            message.msg_iovlen = 1;
            message.msg_control = control.data;
            message.msg_controllen = sizeof(control.data);
            struct cmsghdr *option = CMSG_FIRSTHDR(&message);
            option->cmsg_level = SOL_UDP;
            option->cmsg_type = UDP_SEGMENT;
            option->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t segment_size = (uint16_t)segment; /* <= size <= MAX_SEGMENTED_BYTES */
            memcpy(CMSG_DATA(option), &segment_size, sizeof(segment_size));
            calls += 1;
            if (sendmsg((int)fd, &message, MSG_DONTWAIT) >= 0) {
                continue; /* UDP: the whole run or nothing */
            }
            if (!gso_unsupported(errno)) { /* a full socket buffer, or the path is gone */
                dropped += count;
                continue;
            }
            refused = errno;
            gso = 0;
        }
        send_each((int)fd, to, to_length, buffer, size, count > 1 ? segment : size, count,
                  &dropped, &calls);
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(nni)", dropped, calls, refused);
}

/* split_annexb(data) -> list of the NAL units of Annex-B data (rtcc.bitstream.split_annexb):
 * each unit runs from after a 00 00 01 start code to the next one, zero bytes before that
 * one excluded (they are the 4-byte start code's or trailing_zero_8bits); bytes before the
 * first start code and empty units are left out. */
static PyObject *
split_annexb(PyObject *self, PyObject *data)
{
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *bytes = (const unsigned char *)view.buf;
    Py_ssize_t length = view.len;
    PyObject *units = PyList_New(0);
    if (units == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    Py_ssize_t start = -1; /* start of the unit being scanned, -1 before the first code */
    Py_ssize_t position = 2;
    for (;;) {
        /* the next start code: a 01 byte preceded by two zero bytes */
        Py_ssize_t code = -1;
        while (position < length) {
            const unsigned char *one = memchr(bytes + position, 1, (size_t)(length - position));
            if (one == NULL) {
                break;
            }
            Py_ssize_t at = one - bytes;
            if (bytes[at - 1] == 0 && bytes[at - 2] == 0) {
                code = at - 2;
                position = at + 1;
                break;
            }
            position = at + 1;
        }
        if (start >= 0) {
            Py_ssize_t end = code >= 0 ? code : length;
            while (end > start && bytes[end - 1] == 0) {
                end--;
            }
            if (end > start) {
                PyObject *unit = PyBytes_FromStringAndSize((const char *)bytes + start,
                                                           end - start);
                if (unit == NULL || PyList_Append(units, unit) < 0) {
                    Py_XDECREF(unit);
                    Py_DECREF(units);
                    PyBuffer_Release(&view);
                    return NULL;
                }
                Py_DECREF(unit);
            }
        }
        if (code < 0) {
            PyBuffer_Release(&view);
            return units;
        }
        start = code + 3;
        if (position < start + 2) {
            position = start + 2; /* a following code needs two bytes before its 01 */
        }
    }
}

/* fragment(nal, max_payload, prefix, kind, nal_header) -> list of fragments of one NAL unit
 * (relay.packets._fragment): all of one size but the last, each ``prefix``, an FU header
 * (start and end bits, ``kind``) and the unit's bytes after its ``nal_header`` bytes. */
static PyObject *
fragment(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 5 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "fragment(nal: bytes, max_payload, prefix: bytes, kind, nal_header)");
        return NULL;
    }
    const char *nal = PyBytes_AS_STRING(args[0]);
    Py_ssize_t nal_length = PyBytes_GET_SIZE(args[0]);
    const char *prefix = PyBytes_AS_STRING(args[2]);
    Py_ssize_t prefix_length = PyBytes_GET_SIZE(args[2]);
    Py_ssize_t max_payload = nonnegative(args[1], "fragment: max_payload");
    Py_ssize_t kind = max_payload < 0 ? -1 : nonnegative(args[3], "fragment: kind");
    Py_ssize_t nal_header = kind < 0 ? -1 : nonnegative(args[4], "fragment: nal_header");
    if (nal_header < 0) {
        return NULL;
    }
    /* both operands non-negative: neither difference can overflow */
    Py_ssize_t room = max_payload - prefix_length - 1;
    Py_ssize_t length = nal_length - nal_header;
    if (room < 1 || length < 1 || kind > 0x3F) {
        PyErr_SetString(PyExc_ValueError, "fragment: nothing to fragment or no room for it");
        return NULL;
    }
    /* ceilings written so that nothing can overflow, whatever max_payload is; then
     * size <= room and (count - 1) * size < length: the last piece has 1 to size bytes */
    Py_ssize_t count = 1 + (length - 1) / room;
    Py_ssize_t size = 1 + (length - 1) / count;
    PyObject *fragments = PyList_New(count);
    if (fragments == NULL) {
        return NULL;
    }
    Py_ssize_t position = nal_header;
    for (Py_ssize_t index = 0; index < count; index++) {
        Py_ssize_t piece = index == count - 1 ? nal_length - position : size;
        PyObject *out = PyBytes_FromStringAndSize(NULL, prefix_length + 1 + piece);
        if (out == NULL) {
            Py_DECREF(fragments);
            return NULL;
        }
        char *bytes = PyBytes_AS_STRING(out);
        memcpy(bytes, prefix, (size_t)prefix_length);
        bytes[prefix_length] = (char)((index == 0 ? 0x80 : 0) | (index == count - 1 ? 0x40 : 0)
                                      | kind);
        memcpy(bytes + prefix_length + 1, nal + position, (size_t)piece);
        position += piece;
        PyList_SET_ITEM(fragments, index, out);
    }
    return fragments;
}

static PyMethodDef methods[] = {
    {"protect_batch", (PyCFunction)(void (*)(void))protect_batch, METH_FASTCALL,
     "Write, protect and lay out a run of a frame's RTP packets; (bytes, first datagram size)."},
    {"send_frame", (PyCFunction)(void (*)(void))send_frame, METH_FASTCALL,
     "Write, protect and send a frame's packets to one viewer; (dropped, calls, errno)."},
    {"split_annexb", split_annexb, METH_O, "The NAL units of Annex-B data."},
    {"fragment", (PyCFunction)(void (*)(void))fragment, METH_FASTCALL,
     "The fragmentation units of one NAL unit."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "relay._fastpath",
    "The relay's per-frame and per-viewer loops, compiled (see relay/fastpath.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    return PyModule_Create(&module);
}
