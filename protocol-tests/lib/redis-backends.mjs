// The Redis a cluster run of the suite shares (PT_REDIS): every kind is started here from
// Debian's redis-server on free ports, and torn down with the suite.
//
//   plain     one redis-server (the default)
//   tls       one TLS-only redis-server with a self-signed CA (made with openssl) and its default
//             user off: Clarion signs in as an ACL user with exactly the rights docs/cluster.md
//             lists, limited to this run's prefix
//   cluster   a three-master Redis Cluster (redis-cli --cluster create)
//   sentinel  a master, a replica and three sentinels
//
// startRedis(kind, dir, prefix) returns { children, lines }: the processes to kill afterwards and
// the Clarion config lines that point the nodes at it.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort } from './ports.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

async function until(what, ms, check) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    await sleep(100);
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

const listens = (port) =>
  new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });

function server(args) {
  return spawn('redis-server', [...args, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
}

/** A port whose Redis Cluster bus port (port + 10000) is free too. */
async function clusterPort() {
  for (;;) {
    const p = await freePort();
    if (p > 1024 && p < 55535 && !(await listens(p + 10000))) return p;
  }
}

async function plain() {
  const port = await freePort();
  const child = server(['--port', String(port)]);
  await until('redis-server listens', 10000, () => listens(port));
  return { children: [child], lines: [`redis_url = "redis://127.0.0.1:${port}/0"`] };
}

async function tls(dir, prefix) {
  const ssl = (args) => run('openssl', args, { cwd: dir });
  ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=pt-ca', '-keyout', 'ca.key', '-out', 'ca.pem']);
  ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'redis.key', '-out', 'redis.csr']);
  fs.writeFileSync(path.join(dir, 'redis.ext'), 'subjectAltName = IP:127.0.0.1\n');
  ssl(['x509', '-req', '-in', 'redis.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', 'redis.pem', '-extfile', 'redis.ext']);
  const port = await freePort();
  // The ACL of docs/cluster.md, for this run's prefix.
  const acl = `user clarion on >pt-pass resetkeys resetchannels ~${prefix}:* &${prefix}:* -@all +@read +@write +@pubsub +@scripting +@transaction +@connection +select -@dangerous +info +time`;
  const conf = path.join(dir, 'redis-tls.conf');
  fs.writeFileSync(
    conf,
    [
      'port 0',
      `tls-port ${port}`,
      `tls-cert-file ${path.join(dir, 'redis.pem')}`,
      `tls-key-file ${path.join(dir, 'redis.key')}`,
      `tls-ca-cert-file ${path.join(dir, 'ca.pem')}`,
      'tls-auth-clients no',
      'user default off',
      acl,
      '',
    ].join('\n'),
  );
  const child = spawn('redis-server', [conf, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  await until('the TLS redis-server listens', 10000, () => listens(port));
  return {
    children: [child],
    lines: [`redis_url = "rediss://clarion:pt-pass@127.0.0.1:${port}/0"`, `redis_tls_ca_file = "${path.join(dir, 'ca.pem')}"`],
  };
}

async function cluster(dir) {
  const ports = [];
  const children = [];
  while (ports.length < 3) {
    const p = await clusterPort();
    if (ports.includes(p)) continue;
    const d = path.join(dir, `node-${p}`);
    fs.mkdirSync(d);
    children.push(server(['--port', String(p), '--dir', d, '--cluster-enabled', 'yes', '--cluster-node-timeout', '2000']));
    ports.push(p);
  }
  for (const p of ports) await until('a cluster node listens', 10000, () => listens(p));
  run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
  for (const p of ports) {
    await until('the Redis Cluster is ok', 20000, () => run('redis-cli', ['-p', String(p), 'cluster', 'info']).includes('cluster_state:ok'));
  }
  const seeds = ports.map((p) => `"redis://127.0.0.1:${p}"`).join(', ');
  return { children, lines: ['redis_mode = "cluster"', `redis_cluster_nodes = [${seeds}]`] };
}

async function sentinel(dir) {
  const master = await freePort();
  const replica = await freePort();
  const children = [server(['--port', String(master)]), server(['--port', String(replica), '--replicaof', '127.0.0.1', String(master)])];
  await until('the master listens', 10000, () => listens(master));
  await until('the replica syncs', 20000, () => run('redis-cli', ['-p', String(replica), 'info', 'replication']).includes('master_link_status:up'));
  const sentinels = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    const conf = path.join(dir, `sentinel-${i}.conf`);
    fs.writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `sentinel monitor pt 127.0.0.1 ${master} 2`,
        'sentinel down-after-milliseconds pt 1000',
        'sentinel failover-timeout pt 3000',
        '',
      ].join('\n'),
    );
    children.push(spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' }));
    sentinels.push(port);
  }
  for (const s of sentinels) {
    await until('a sentinel names the master', 20000, () =>
      run('redis-cli', ['-p', String(s), 'sentinel', 'get-master-addr-by-name', 'pt']).includes(String(master)),
    );
  }
  const list = sentinels.map((p) => `"redis://127.0.0.1:${p}"`).join(', ');
  return { children, lines: ['redis_mode = "sentinel"', `redis_sentinels = [${list}]`, 'redis_sentinel_master = "pt"'] };
}

export async function startRedis(kind, dir, prefix) {
  switch (kind) {
    case 'plain':
      return plain();
    case 'tls':
      return tls(dir, prefix);
    case 'cluster':
      return cluster(dir);
    case 'sentinel':
      return sentinel(dir);
    default:
      throw new Error(`PT_REDIS=${kind}: expected plain, tls, cluster or sentinel`);
  }
}
