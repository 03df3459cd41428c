// Free loopback ports, for the runner and the tests that start their own servers. No other
// imports here: run.mjs uses it before the environment the tests read is set.
//
// Ports come from 10000–21999, below Linux's ephemeral range (32768 and up by default), and so
// does a Redis Cluster node's bus port (+10000): the kernel never hands these to outgoing
// connections. A port taken from the ephemeral range (`listen(0)`) could be given to one of the
// suite's many client sockets between the check and the server's bind — seen as "Address
// already in use" from a server a test started.
import net from 'node:net';

const LOW = 10000;
const SPAN = 12000;

/** Whether 127.0.0.1:`port` can be bound now. */
function bindable(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort() {
  for (let i = 0; i < 200; i += 1) {
    const port = LOW + Math.floor(Math.random() * SPAN);
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port in ${LOW}-${LOW + SPAN - 1}`);
}
