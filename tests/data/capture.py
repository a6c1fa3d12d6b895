import time
import os, sys
while not os.path.exists("/tmp/i17cap/go"): time.sleep(0.01)
import socket, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 8080)); srv.listen(16)
held = []
for i in range(4):
    c = socket.socket(); c.connect(("127.0.0.1", 8080)); held.append(c)
acc = [srv.accept()[0] for _ in range(4)]
x = socket.socket()
print("fifth:", x.connect_ex(("127.0.0.1", 8080)))
x.close()
held[0].close(); acc[0].close()           # client closes first: time-wait
acc[1].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00'); acc[1].close(); time.sleep(0.05); held[1].close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b"x", ("127.0.0.1", 5353))
b = socket.socket()
try:
    b.bind(("127.0.0.1", 8080))
except OSError as e:
    print("bind:", e.errno)
b.close(); u.close()
for s in held[2:] + acc[2:]:
    s.close()
srv.close()
time.sleep(0.2)
