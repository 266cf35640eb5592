// Used by deploy/local/smoke-test: checks transactions end to end against a
// running broker. Run as a single-file program on the fetched classpath:
//   java -cp "$(deploy/local/kafka classpath)" deploy/local/TxCheck.java BOOTSTRAP TOPIC
// It aborts one transaction and commits another; a read_committed consumer must
// see only the committed record.
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class TxCheck {
  public static void main(String[] args) throws Exception {
    String bootstrap = args[0];
    String topic = args[1];
    Properties p = new Properties();
    p.put("bootstrap.servers", bootstrap);
    p.put("transactional.id", "cardlink-txcheck-" + topic);
    try (var producer = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
      producer.initTransactions();
      producer.beginTransaction();
      producer.send(new ProducerRecord<>(topic, "aborted"));
      producer.flush();
      producer.abortTransaction();
      producer.beginTransaction();
      producer.send(new ProducerRecord<>(topic, "committed"));
      producer.commitTransaction();
    }
    Properties c = new Properties();
    c.put("bootstrap.servers", bootstrap);
    c.put("isolation.level", "read_committed");
    c.put("auto.offset.reset", "earliest");
    c.put("group.id", "cardlink-txcheck-" + System.nanoTime());
    List<String> seen = new ArrayList<>();
    try (var consumer = new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer())) {
      consumer.subscribe(List.of(topic));
      long end = System.currentTimeMillis() + 30_000;
      while (System.currentTimeMillis() < end && !seen.contains("committed")) {
        for (var r : consumer.poll(Duration.ofMillis(500))) seen.add(r.value());
      }
    }
    System.out.println("read_committed consumer saw: " + seen);
    if (!seen.equals(List.of("committed"))) System.exit(1);
  }
}
