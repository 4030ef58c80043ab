// Drives a ZooKeeper-protocol server with Apache Curator 5 (Debian's libcurator-*-java):
// the recipes Java users run on ZooKeeper. Prints "OK <check>" per check and exits 0 only
// if every check passed. Usage: java CuratorCheck host:port
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.data.Stat;

public class CuratorCheck {
    static void check(boolean condition, String what) {
        if (!condition) {
            throw new AssertionError("FAILED " + what);
        }
        System.out.println("OK " + what);
    }

    static CuratorFramework client(String connect) {
        CuratorFramework client = CuratorFrameworkFactory.newClient(connect, 10000, 5000, new RetryNTimes(3, 200));
        client.start();
        return client;
    }

    public static void main(String[] args) throws Exception {
        String connect = args[0];
        try (CuratorFramework a = client(connect); CuratorFramework b = client(connect)) {
            check(a.blockUntilConnected(10, TimeUnit.SECONDS), "connect");

            // Parents as containers, then create, read, update with versions.
            a.create().creatingParentContainersIfNeeded().forPath("/curator/app/config", "v1".getBytes());
            Stat stat = a.checkExists().forPath("/curator/app");
            // Clients see ephemeralOwner 0 for containers (DataNode.getClientEphemeralOwner).
            check(stat != null && stat.getEphemeralOwner() == 0, "parent created");
            a.setData().withVersion(0).forPath("/curator/app/config", "v2".getBytes());
            check(new String(b.getData().forPath("/curator/app/config")).equals("v2"), "set and get with versions");

            // A mutex held by one client excludes the other.
            InterProcessMutex lockA = new InterProcessMutex(a, "/curator/locks/m");
            InterProcessMutex lockB = new InterProcessMutex(b, "/curator/locks/m");
            check(lockA.acquire(5, TimeUnit.SECONDS), "mutex acquired");
            check(!lockB.acquire(300, TimeUnit.MILLISECONDS), "mutex excludes the other client");
            lockA.release();
            check(lockB.acquire(5, TimeUnit.SECONDS), "mutex handed over");
            lockB.release();

            // Leader election: one leader, succession when it closes.
            LeaderLatch first = new LeaderLatch(a, "/curator/leader", "a");
            LeaderLatch second = new LeaderLatch(b, "/curator/leader", "b");
            first.start();
            check(first.await(5, TimeUnit.SECONDS), "first latch leads");
            second.start();
            check(!second.await(300, TimeUnit.MILLISECONDS), "second latch waits");
            first.close();
            check(second.await(5, TimeUnit.SECONDS), "second latch takes over");
            second.close();

            // A distributed counter under contention.
            List<Thread> threads = new ArrayList<>();
            AtomicInteger failures = new AtomicInteger();
            for (CuratorFramework client : new CuratorFramework[] {a, b}) {
                Thread thread = new Thread(() -> {
                    DistributedAtomicLong counter = new DistributedAtomicLong(client, "/curator/counter", new RetryNTimes(100, 10));
                    for (int i = 0; i < 50; i++) {
                        try {
                            AtomicValue<Long> value = counter.increment();
                            if (!value.succeeded()) failures.incrementAndGet();
                        } catch (Exception e) {
                            failures.incrementAndGet();
                        }
                    }
                });
                thread.start();
                threads.add(thread);
            }
            for (Thread thread : threads) thread.join();
            long total = new DistributedAtomicLong(a, "/curator/counter", new RetryNTimes(3, 10)).get().postValue();
            check(failures.get() == 0 && total == 100, "counter increments add up");

            // CuratorCache: persistent recursive watches see the subtree.
            List<String> seen = new CopyOnWriteArrayList<>();
            CountDownLatch created = new CountDownLatch(2);
            CuratorCache cache = CuratorCache.build(a, "/curator/cache");
            cache.listenable().addListener(CuratorCacheListener.builder()
                .forCreates(node -> { seen.add(node.getPath()); created.countDown(); })
                .build());
            cache.start();
            b.create().creatingParentsIfNeeded().forPath("/curator/cache/x/y", "z".getBytes());
            check(created.await(5, TimeUnit.SECONDS), "cache sees creates below its root " + seen);
            cache.close();

            // Ephemerals vanish with their session.
            CuratorFramework c = client(connect);
            c.create().withMode(CreateMode.EPHEMERAL).forPath("/curator/ephemeral");
            c.close();
            // The clients may be on different ensemble members: a read sees another
            // client's committed write once it syncs (ZooKeeper's consistency guarantees).
            CountDownLatch synced = new CountDownLatch(1);
            a.getZookeeperClient().getZooKeeper().sync("/curator", (rc, path, context) -> synced.countDown(), null);
            check(synced.await(5, TimeUnit.SECONDS), "sync answered");
            // A close the client could not send (its connection was being re-established)
            // ends the session only when it expires (10 s asked for here): wait for that
            // condition, bounded, rather than for the close's reply alone.
            long goneBy = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (a.checkExists().forPath("/curator/ephemeral") != null && System.nanoTime() < goneBy) {
                Thread.sleep(50);
            }
            check(a.checkExists().forPath("/curator/ephemeral") == null, "ephemeral gone with its session");

            // An emptied container is reaped by the server (needs a short check interval).
            if (args.length > 1 && args[1].equals("reap")) {
                a.delete().forPath("/curator/app/config");
                long deadline = System.currentTimeMillis() + 10000;
                while (a.checkExists().forPath("/curator/app") != null && System.currentTimeMillis() < deadline) {
                    Thread.sleep(100);
                }
                check(a.checkExists().forPath("/curator/app") == null, "empty container reaped");
            }
        }
        System.out.println("ALL OK");
    }
}
