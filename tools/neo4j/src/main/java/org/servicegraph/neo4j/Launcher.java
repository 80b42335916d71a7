package org.servicegraph.neo4j;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;

/**
 * Neo4j Community, embedded, with its Bolt connector on 127.0.0.1: the server the tests,
 * the benchmarks and a laptop talk to through the official Python driver.
 *
 * <p>Prints one line {@code servicegraph-neo4j ready bolt://127.0.0.1:PORT} on standard
 * output once Bolt accepts connections, and stops cleanly on SIGTERM (a shutdown hook) or,
 * with {@code --exit-on-eof}, when its standard input closes, so that a test process that
 * dies, even by kill -9, takes its server with it.
 */
public final class Launcher {
    private Launcher() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> options = parse(args);
        Path home = Path.of(options.getOrDefault("home", "neo4j-home")).toAbsolutePath();
        int port = Integer.parseInt(options.getOrDefault("port", "7687"));
        String password = options.getOrDefault("password", "servicegraph-test");
        long pageCache = megabytes(options.getOrDefault("page-cache-mb", "512"));
        // A ceiling on the memory of one transaction: a load held in one transaction
        // fails here as it would on a production server, instead of passing on a laptop.
        long transactionMax = megabytes(options.getOrDefault("transaction-max-mb", "0"));
        Files.createDirectories(home);

        DatabaseManagementServiceBuilder builder = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .setConfig(HttpConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.pagecache_memory, pageCache);
        if (transactionMax > 0) {
            builder.setConfig(GraphDatabaseSettings.memory_transaction_max_size, transactionMax);
        }
        DatabaseManagementService service = builder.build();
        Runtime.getRuntime().addShutdownHook(new Thread(service::shutdown, "neo4j-shutdown"));

        setPassword(service, password);

        System.out.println("servicegraph-neo4j ready bolt://127.0.0.1:" + port);
        System.out.flush();
        if (options.containsKey("exit-on-eof")) {
            waitForEndOfInput(System.in);
            System.exit(0); // runs the shutdown hook
        }
        Thread.currentThread().join(); // until SIGTERM
    }

    /**
     * The first start creates the user neo4j with a password that must be changed; the
     * embedded API runs as the engine itself, so it may set it outright. A restart on the
     * same home (the fault tests stop and start a server) finds it set: Neo4j refuses to
     * set a password to its current value, which then is what we wanted.
     */
    private static void setPassword(DatabaseManagementService service, String password) {
        try {
            service.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME).executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED",
                    Map.of("password", password));
        } catch (RuntimeException e) {
            if (!String.valueOf(messages(e)).contains("cannot be the same")) {
                throw e;
            }
        }
    }

    private static String messages(Throwable e) {
        StringBuilder all = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause()) {
            all.append(t.getMessage()).append('\n');
        }
        return all.toString();
    }

    private static void waitForEndOfInput(InputStream in) throws IOException {
        byte[] buffer = new byte[256];
        while (in.read(buffer) >= 0) {
            // input is ignored: only its end matters
        }
    }

    private static long megabytes(String value) {
        return Long.parseLong(value) * 1024L * 1024L;
    }

    private static Map<String, String> parse(String[] args) {
        Map<String, String> options = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            if (!arg.startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument '" + arg + "'");
            }
            String name = arg.substring(2);
            if (name.equals("exit-on-eof")) {
                options.put(name, "true");
            } else if (i + 1 < args.length) {
                options.put(name, args[++i]);
            } else {
                throw new IllegalArgumentException("--" + name + " needs a value");
            }
        }
        return options;
    }
}
