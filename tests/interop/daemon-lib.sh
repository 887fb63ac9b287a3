# Shared by the interop scripts that start the iroh-relay binary on loopback ports (source it).
#
# free_port [tcp|udp]: a port the kernel just handed out on 127.0.0.1 (tcp if not given). It is
#   free now, but another process may take it before the daemon binds it: wait for the daemon's
#   own listening line (wait_listening), not for an answer on the port, which anyone could give.
# wait_listening LOG PATTERN: bounded wait (10 s) for PATTERN in LOG while the process $PID
#   lives; 1 if it exits or the time is up.
free_port() {
  /usr/bin/python3 -c "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_STREAM if sys.argv[1]=='tcp' else socket.SOCK_DGRAM); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])" "${1:-tcp}"
}
wait_listening() {
  for _ in $(seq 1 100); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
