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

/* Writes and protects payloads[start:end] at the start of buffer; returns the bytes written
 * (and the first datagram's size in *segment), -1 with an exception set. */
static Py_ssize_t
write_batch(unsigned char *buffer, Py_ssize_t capacity, PyObject *payloads, Py_ssize_t start,
            Py_ssize_t end, Py_ssize_t last, const char *head, Py_ssize_t head_length,
            unsigned long seq, srtp_protect_fn protect, void *context, Py_ssize_t *segment_out)
{
    Py_ssize_t offset = 0;
    Py_ssize_t segment = 0;
    for (Py_ssize_t index = start; index < end; index++) {
        PyObject *payload = PyTuple_GET_ITEM(payloads, index);
        if (!PyBytes_Check(payload)) {
            PyErr_SetString(PyExc_TypeError, "a payload is not bytes");
            return -1;
        }
        Py_ssize_t payload_length = PyBytes_GET_SIZE(payload);
        Py_ssize_t length = head_length + payload_length;
        if (offset + length + SRTP_TRAILER_ROOM > capacity || length > INT32_MAX / 2) {
            PyErr_SetString(PyExc_ValueError, "the batch does not fit the send buffer");
            return -1;
        }
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
        if (index == start) {
            segment = protected_length;
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
 * protected packet directly after the previous one from the start of ``buffer``. */
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
    if (!PyTuple_Check(payloads) || !PyBytes_Check(header)) {
        PyErr_SetString(PyExc_TypeError, "protect_batch: payloads must be a tuple, header bytes");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[2]);
    Py_ssize_t end = PyLong_AsSsize_t(args[3]);
    Py_ssize_t last = PyLong_AsSsize_t(args[4]);
    unsigned long seq = PyLong_AsUnsignedLong(args[6]);
    void *protect_address = PyLong_AsVoidPtr(args[7]);
    void *context = PyLong_AsVoidPtr(args[8]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (start < 0 || end > PyTuple_GET_SIZE(payloads) || start >= end) {
        PyErr_SetString(PyExc_IndexError, "protect_batch: batch outside the frame's payloads");
        return NULL;
    }
    if (protect_address == NULL || context == NULL) {
        PyErr_SetString(PyExc_ValueError, "protect_batch: no libsrtp function or context");
        return NULL;
    }
    srtp_protect_fn protect = (srtp_protect_fn)protect_address;
    const char *head = PyBytes_AS_STRING(header);
    Py_ssize_t head_length = PyBytes_GET_SIZE(header);
    if (head_length < 12) {
        PyErr_SetString(PyExc_ValueError, "protect_batch: an RTP header has at least 12 bytes");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    unsigned char *buffer = (unsigned char *)view.buf;
    Py_ssize_t capacity = view.len;
    Py_ssize_t segment = 0;
    Py_ssize_t offset = write_batch(buffer, capacity, payloads, start, end, last, head,
                                    head_length, seq, protect, context, &segment);
    if (offset < 0) {
        goto fail;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(nn)", offset, segment);
fail:
    PyBuffer_Release(&view);
    return NULL;
}

static int
gso_unsupported(int error)
{
    return error == EIO || error == EINVAL || error == ENOPROTOOPT || error == EOPNOTSUPP;
}

/* Sends ``count`` datagrams of ``segment`` bytes (the last possibly shorter) laid out in
 * ``data``, one sendto each; what the socket cannot take now is dropped and counted. */
static void
send_each(int fd, const struct sockaddr *address, socklen_t address_length,
          const unsigned char *data, Py_ssize_t size, Py_ssize_t segment, Py_ssize_t count,
          Py_ssize_t *dropped, Py_ssize_t *calls)
{
    Py_ssize_t offset = 0;
    for (Py_ssize_t index = 0; index < count && offset < size; index++) {
        Py_ssize_t length = size - offset < segment ? size - offset : segment;
        ssize_t sent = sendto(fd, data + offset, (size_t)length, 0, address, address_length);
        *calls += 1;
        if (sent < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) { /* the socket buffer is full */
                *dropped += count - index;
                return;
            }
            *dropped += 1;
        }
        offset += length;
    }
}

/* send_frame(fd, address, buffer, payloads, batches, last, header, seq, protect, context, gso)
 *     -> (datagrams dropped, system calls, errno of a refused segmentation offload or 0)
 *
 * A frame to one viewer: each (start, end) run of ``batches`` written and protected into
 * ``buffer`` as protect_batch does, then sent to ``address`` (a packed sockaddr) on socket
 * ``fd`` with one sendmsg using UDP segmentation offload (``gso``), or one sendto per datagram.
 * When the kernel refuses segmentation, the rest of the frame goes one datagram per call and
 * the errno is returned, so the caller stops asking for it. */
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
        || !PyBytes_Check(header)) {
        PyErr_SetString(PyExc_TypeError, "send_frame: address and header must be bytes, "
                        "payloads and batches tuples");
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    Py_ssize_t last = PyLong_AsSsize_t(args[5]);
    unsigned long seq = PyLong_AsUnsignedLong(args[7]);
    void *protect_address = PyLong_AsVoidPtr(args[8]);
    void *context = PyLong_AsVoidPtr(args[9]);
    int gso = PyObject_IsTrue(args[10]);
    if (PyErr_Occurred() || gso < 0) {
        return NULL;
    }
    if (protect_address == NULL || context == NULL || fd < 0 || fd > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "send_frame: no socket, libsrtp function or context");
        return NULL;
    }
    const char *head = PyBytes_AS_STRING(header);
    Py_ssize_t head_length = PyBytes_GET_SIZE(header);
    if (head_length < 12) {
        PyErr_SetString(PyExc_ValueError, "send_frame: an RTP header has at least 12 bytes");
        return NULL;
    }
    const struct sockaddr *to = (const struct sockaddr *)PyBytes_AS_STRING(address);
    socklen_t to_length = (socklen_t)PyBytes_GET_SIZE(address);
    Py_ssize_t frame_packets = PyTuple_GET_SIZE(payloads);
    Py_buffer view;
    if (PyObject_GetBuffer(args[2], &view, PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    unsigned char *buffer = (unsigned char *)view.buf;
    Py_ssize_t dropped = 0;
    Py_ssize_t calls = 0;
    int refused = 0;
    Py_ssize_t batch_count = PyTuple_GET_SIZE(batches);
    for (Py_ssize_t b = 0; b < batch_count; b++) {
        PyObject *batch = PyTuple_GET_ITEM(batches, b);
        if (!PyTuple_Check(batch) || PyTuple_GET_SIZE(batch) != 2) {
            PyErr_SetString(PyExc_TypeError, "send_frame: a batch is not a (start, end) pair");
            goto fail;
        }
        Py_ssize_t start = PyLong_AsSsize_t(PyTuple_GET_ITEM(batch, 0));
        Py_ssize_t end = PyLong_AsSsize_t(PyTuple_GET_ITEM(batch, 1));
        if (PyErr_Occurred()) {
            goto fail;
        }
        if (start < 0 || end > frame_packets || start >= end) {
            PyErr_SetString(PyExc_IndexError, "send_frame: batch outside the frame's payloads");
            goto fail;
        }
        Py_ssize_t segment = 0;
        Py_ssize_t size = write_batch(buffer, view.len, payloads, start, end, last, head,
                                      head_length, seq, (srtp_protect_fn)protect_address,
                                      context, &segment);
        if (size < 0) {
            goto fail;
        }
        seq = (seq + (unsigned long)(end - start)) & 0xFFFF;
        Py_ssize_t count = end - start;
        if (count > 1 && gso) {
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
            uint16_t segment_size = (uint16_t)segment;
            memcpy(CMSG_DATA(option), &segment_size, sizeof(segment_size));
            calls += 1;
            if (sendmsg((int)fd, &message, 0) >= 0) {
                continue;
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
fail:
    PyBuffer_Release(&view);
    return NULL;
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
    Py_ssize_t max_payload = PyLong_AsSsize_t(args[1]);
    const char *prefix = PyBytes_AS_STRING(args[2]);
    Py_ssize_t prefix_length = PyBytes_GET_SIZE(args[2]);
    long kind = PyLong_AsLong(args[3]);
    Py_ssize_t nal_header = PyLong_AsSsize_t(args[4]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t room = max_payload - prefix_length - 1;
    Py_ssize_t length = nal_length - nal_header;
    if (room < 1 || length < 1 || nal_header < 0 || kind < 0 || kind > 0x3F) {
        PyErr_SetString(PyExc_ValueError, "fragment: nothing to fragment or no room for it");
        return NULL;
    }
    Py_ssize_t count = (length + room - 1) / room;
    Py_ssize_t size = (length + count - 1) / count;
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
