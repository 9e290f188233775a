#if Kafka
import CRdKafka

/// Settings for a new librdkafka client, applied one by one with the setting
/// that failed named in the error.
func makeKafkaConf(_ settings: [(String, String)]) throws(KafkaError) -> OpaquePointer {
    let conf = rd_kafka_conf_new()!
    for (key, value) in settings {
        var error = [CChar](repeating: 0, count: 512)
        if rd_kafka_conf_set(conf, key, value, &error, error.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            throw .setting(key: key, value: value, reason: kafkaString(error))
        }
    }
    return conf
}

/// A client made from `conf` (which it takes over, or destroys on failure).
func makeKafkaClient(_ type: rd_kafka_type_t, conf: OpaquePointer, what: String) throws(KafkaError) -> OpaquePointer {
    var error = [CChar](repeating: 0, count: 512)
    guard let handle = rd_kafka_new(type, conf, &error, error.count) else {
        rd_kafka_conf_destroy(conf)
        throw .create(what: what, reason: kafkaString(error))
    }
    return handle
}

/// librdkafka's description of an error code.
func kafkaReason(_ code: rd_kafka_resp_err_t) -> String {
    String(cString: rd_kafka_err2str(code))
}

/// A NUL-terminated C string from a buffer.
func kafkaString(_ buffer: [CChar]) -> String {
    buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}
#endif
